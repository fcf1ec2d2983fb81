"""Fuzzing `tickwise.config.load`: TOML files and command-line overrides.

Documented failure: anything wrong is `ConfigError`, one line naming the file, section and key.
A loaded configuration holds only finite numbers. The inputs the fuzzer once broke `load` with
are kept as regression cases (`FOUND`). Run deeper with `TICKWISE_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from fuzzing import budget, mutated, raw_bytes
from hypothesis import example, given
from hypothesis import strategies as st

from tickwise.config import Config, ConfigError, load

DEFAULTS: dict[str, dict[str, Any]] = Config().to_dict()


def toml_value(value: Any) -> str | None:
    """`value` written as TOML, None when TOML has no way to write it (null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        items = [toml_value(v) for v in value]
        return None if None in items else "[" + ", ".join(i for i in items if i is not None) + "]"
    if isinstance(value, dict):
        pairs = [(json.dumps(str(k)), toml_value(v)) for k, v in value.items()]
        return "{" + ", ".join(f"{k} = {v}" for k, v in pairs if v is not None) + "}"
    return None


def toml_document(doc: Any) -> str:
    """A {section: {key: value}} tree as a TOML file (what cannot be written is left out)."""
    lines: list[str] = []
    for section, values in doc.items() if isinstance(doc, dict) else ():
        if not isinstance(values, dict):
            written = toml_value(values)
            if written is not None:
                lines.insert(0, f"{json.dumps(str(section))} = {written}")
            continue
        lines.append(f"[{json.dumps(str(section))}]")
        for key, value in values.items():
            written = toml_value(value)
            if written is not None:
                lines.append(f"{json.dumps(str(key))} = {written}")
    return "\n".join(lines) + "\n"


def loaded(text: bytes) -> Config | None:
    """`load` of a file holding `text`: the config, or None when it raised `ConfigError`."""
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "tickwise.toml"
        path.write_bytes(text)
        try:
            return load(path)
        except ConfigError as error:
            assert "\n" not in str(error), "a config error is one line"
            return None


def assert_finite(config: Config) -> None:
    for section, values in asdict(config).items():
        for key, value in values.items():
            if isinstance(value, float):
                assert math.isfinite(value), f"[{section}] {key} = {value}"


# Inputs the fuzzer once found escaping as other exceptions or loading a NaN: each is now one
# line of ConfigError.
FOUND = {
    "not_utf8": b"[market]\ntick_rate = 3000 # \xff\n",
    "section_not_a_table": b"run = 5\n",
    "section_an_array": b"[[run]]\ntier = 'tiny'\n",
    "tier_not_text": b"[run]\ntier = [1]\n",
    "float_past_any_float": b"[market]\ntick_rate = 1" + b"0" * 400 + b"\n",
    "nan_without_a_range": b"[market]\nburst_at_s = nan\n",
}


settings_trees = mutated(DEFAULTS, steps=4)


@budget()
@given(settings_trees)
@example({"market": {"tick_rate": 1e308, "stocks": 2**62}, "venues": {"faults": "5xx=1e400"}})
@example({"run": {"tier": 5}, "risk": {"price_band_pct": -1.0}})
def test_a_settings_file_loads_to_finite_settings_or_a_config_error(doc: dict[str, Any]) -> None:
    config = loaded(toml_document(doc).encode())
    if config is not None:
        assert_finite(config)


@budget(0.5)
@given(st.one_of(raw_bytes, st.text(max_size=200).map(str.encode)))
@example(b"[market\n")
@example(b"[[market]]\ntick_rate = 1.0\n")
def test_raw_text_is_a_config_or_a_config_error(text: bytes) -> None:
    config = loaded(text)
    if config is not None:
        assert_finite(config)


@budget(0.5)
# The command line always hands `load` a mapping of sections; what is inside may be anything.
@given(
    mutated({"market": {"tick_rate": 1500.0}, "engine": {"allocators": 3}}).filter(
        lambda tree: isinstance(tree, dict)
    )
)
def test_command_line_overrides_apply_or_are_a_config_error(overrides: dict[str, Any]) -> None:
    try:
        config = load(overrides=overrides)
    except ConfigError:
        return
    assert_finite(config)


@pytest.mark.parametrize("case", sorted(FOUND))
def test_inputs_the_fuzzer_found_are_one_line_config_errors(case: str) -> None:
    assert loaded(FOUND[case]) is None
