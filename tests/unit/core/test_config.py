"""Configuration: defaults, tiers, files and flags; every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwise.config import ConfigError, load, scale_instruments


def test_defaults_are_the_dev_tier() -> None:
    config = load()
    assert config.run.tier == "dev"
    assert config.instruments == 1150 and config.clients.count == 30_000
    assert config.market.tick_rate == 20_000


def test_tiny_tier_then_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("[market]\ntick_rate = 3000\n[engine]\nallocators = 3\n")
    config = load(path, tier="tiny", overrides={"market": {"tick_rate": 1500.0}})
    assert config.instruments == 50 and config.clients.count == 1000
    assert config.engine.allocators == 3
    assert config.market.tick_rate == 1500.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[markt]\nx = 1\n", r"t\.toml: unknown section \[markt\]"),
        ("[market]\ntick_rat = 1\n", r"t\.toml: \[market\] tick_rat: unknown setting"),
        ("[market]\ntick_rate = 'fast'\n", r"\[market\] tick_rate: expected a number"),
        ("[clients]\ncount = 0\n", r"\[clients\] count: 0 is out of range"),
        ("[run]\ntier = 'huge'\n", r"tier 'huge' is not one of"),
        ("[market\n", r"t\.toml: not valid TOML"),
        ("[venues]\nmode = 'ftp'\n", r"\[venues\] mode: 'ftp' is not one of inproc, http, live"),
        ("[venues]\nfaults = 'boom=0.1'\n", r"\[venues\] faults: unknown fault 'boom'"),
    ],
)
def test_broken_config_gives_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value)


def test_missing_file_is_reported() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load("/nonexistent/tickwise.toml")


def test_instrument_scaling_keeps_the_crypto_share() -> None:
    config = scale_instruments(load(), 100)
    assert config.instruments == 100 and config.market.crypto == 13
