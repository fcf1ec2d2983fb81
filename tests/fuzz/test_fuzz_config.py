"""Fuzzing `tickwise.config.load`: TOML files and command-line overrides.

Documented failure: anything wrong is `ConfigError`, one line naming the file, section and key.
A loaded configuration holds only finite numbers. The properties draw from the inputs `load`
handles today; the inputs it does not (listed in `KNOWN_ESCAPES`, fixes reported) are pinned
as strict expected failures, so the day `load` handles them the suite says to widen the
properties. Run deeper with `TICKWISE_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import json
import math
import tempfile
import tomllib
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


# What `load` lets escape instead of a ConfigError (config.py is not fuzz-owned; fixes reported).
KNOWN_ESCAPES = {
    "not_utf8": b"[market]\ntick_rate = 3000 # \xff\n",
    "section_not_a_table": b"run = 5\n",
    "section_an_array": b"[[run]]\ntier = 'tiny'\n",
    "tier_not_text": b"[run]\ntier = [1]\n",
    "float_past_any_float": b"[market]\ntick_rate = 1" + b"0" * 400 + b"\n",
    "nan_without_a_range": b"[market]\nburst_at_s = nan\n",
}


def _handled(doc: Any) -> bool:
    """Whether a settings tree avoids every known escape, so a property may expect `load` to
    handle it: `[run]` a table whose tier is not a list or table, numbers a float can hold."""

    def fine(value: Any) -> bool:
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return abs(value) < 2**63
        if isinstance(value, list | dict):
            return all(fine(v) for v in (value.values() if isinstance(value, dict) else value))
        return True

    if not isinstance(doc, dict):
        return False
    run = doc.get("run", {})
    return isinstance(run, dict) and not isinstance(run.get("tier"), list | dict) and fine(doc)


def _handled_text(data: bytes) -> bool:
    """`_handled` for a file: UTF-8, and either not TOML (a ConfigError) or a handled tree."""
    try:
        return _handled(tomllib.loads(data.decode("utf-8")))
    except UnicodeDecodeError:
        return False
    except tomllib.TOMLDecodeError:
        return True


settings_trees = mutated(DEFAULTS, steps=4).filter(_handled)


@budget()
@given(settings_trees)
@example({"market": {"tick_rate": 1e308, "stocks": 2**62}, "venues": {"faults": "5xx=1e400"}})
@example({"run": {"tier": 5}, "risk": {"price_band_pct": -1.0}})
def test_a_settings_file_loads_to_finite_settings_or_a_config_error(doc: dict[str, Any]) -> None:
    config = loaded(toml_document(doc).encode())
    if config is not None:
        assert_finite(config)


@budget(0.5)
@given(st.one_of(raw_bytes, st.text(max_size=200).map(str.encode)).filter(_handled_text))
@example(b"[market\n")
@example(b"[[market]]\ntick_rate = 1.0\n")
def test_raw_text_is_a_config_or_a_config_error(text: bytes) -> None:
    config = loaded(text)
    if config is not None:
        assert_finite(config)


@budget(0.5)
@given(mutated({"market": {"tick_rate": 1500.0}, "engine": {"allocators": 3}}).filter(_handled))
def test_command_line_overrides_apply_or_are_a_config_error(overrides: dict[str, Any]) -> None:
    try:
        config = load(overrides=overrides)
    except ConfigError:
        return
    assert_finite(config)


@pytest.mark.xfail(strict=True, reason="config.load lets this escape as another error")
@pytest.mark.parametrize("case", sorted(KNOWN_ESCAPES))
def test_known_escapes_are_config_errors(case: str) -> None:
    """Each is a `ConfigError` (or a finite config) once config.py handles it; until then it
    raises something else or loads a NaN, and this expected failure holds."""
    config = loaded(KNOWN_ESCAPES[case])
    assert config is None or all(
        not isinstance(v, float) or math.isfinite(v)
        for values in asdict(config).values()
        for v in values.values()
    )
