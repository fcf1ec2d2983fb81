"""Configuration: defaults, tiers, files and flags; every mistake is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwise.config import ConfigError, RiskConfig, load, redact_url, scale_instruments
from tickwise.model.instruments import Venue


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


# --- [risk] -------------------------------------------------------------------------------------


def test_risk_defaults_leave_generated_flow_alone_and_venues_uncapped() -> None:
    risk = load().risk
    assert (risk.price_band_pct, risk.price_band_confirmations) == (10.0, 3)
    assert risk.max_quote_age_ms == 5_000.0 and risk.max_daily_loss_pct == 5.0
    assert all(risk.max_orders_per_s(v) == 0.0 for v in Venue)


def test_risk_section_from_a_file_with_a_per_venue_order_rate(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        "[risk]\nprice_band_pct = 7.5\nmax_quote_age_ms = 0\n"
        "binance_max_orders_per_s = 40\nthrottle_burst_s = 0.5\netrade_max_orders_per_s = 0.5\n"
    )
    risk = load(path).risk
    assert risk.price_band_pct == 7.5 and risk.max_quote_age_ms == 0.0
    assert risk.max_orders_per_s(Venue.BINANCE) == 40.0
    assert risk.max_orders_per_s(Venue.ALPACA) == 0.0
    assert risk.order_burst(Venue.BINANCE) == 20.0  # half a second of 40/s
    assert risk.order_burst(Venue.ETRADE) == 1.0  # never less than one order


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[risk]\nprice_band_pct = -1\n",
            r"t\.toml: \[risk\] price_band_pct: -1\.0 is out of range",
        ),
        ("[risk]\nmax_daily_loss_pct = 101\n", r"\[risk\] max_daily_loss_pct: 101\.0 is out of"),
        ("[risk]\nmax_quote_age_ms = -0.5\n", r"\[risk\] max_quote_age_ms: -0\.5 is out of range"),
        ("[risk]\nprice_band_confirmations = 0\n", r"\[risk\] price_band_confirmations: 0 is out"),
        ("[risk]\nprice_band_confirmations = 2.5\n", r"price_band_confirmations: expected an int"),
        ("[risk]\nalpaca_max_orders_per_s = -3\n", r"\[risk\] alpaca_max_orders_per_s: -3\.0 is"),
        ("[risk]\nmax_orders_per_s = 5\n", r"\[risk\] max_orders_per_s: unknown setting"),
    ],
)
def test_a_broken_risk_setting_gives_one_line_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("price_band_pct", float("nan")), ("max_quote_age_ms", -1.0), ("throttle_burst_s", 1e9)],
)
def test_a_risk_config_built_in_code_is_validated_too(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"^\[risk\] {field}: .* is out of range"):
        RiskConfig(**{field: value})


def test_the_recorded_configuration_never_holds_a_secret() -> None:
    config = load(
        overrides={
            "store": {"url": "postgresql://trader:s3cret@db:5432/tw"},
            "dashboard": {"token": "tok-123"},
        }
    )
    recorded = str(config.to_dict())
    assert "s3cret" not in recorded and "tok-123" not in recorded
    assert config.to_dict()["store"]["url"] == "postgresql://trader:***@db:5432/tw"
    assert config.store.url.endswith("s3cret@db:5432/tw")  # the run itself still connects
    assert redact_url("sqlite:///var/tw.sqlite") == "sqlite:///var/tw.sqlite"
