"""Parameter spaces, grids and the strategy registry: what a tuner or an operator types in."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.strategy import (
    STRATEGIES,
    Param,
    ParamSpace,
    UnknownStrategyError,
    get_strategy,
    parse_grid,
)
from tickwise.strategy.trend import TREND

SPACE = ParamSpace(
    (
        Param("lookback", 5, 100, 20, integer=True),
        Param("threshold", 0.0, 1.0, 0.25),
    )
)


def test_builtin_families_are_registered_with_valid_defaults() -> None:
    assert {"trend", "mean_reversion", "breakout"} <= set(STRATEGIES)
    for spec in STRATEGIES.values():
        defaults = spec.defaults()
        np.testing.assert_array_equal(spec.validate(defaults), defaults)
        assert spec.params.names[-1] == "min_hold_s"
        assert spec.warmup_s(defaults) > 0


def test_unknown_strategy_error_lists_the_known_names() -> None:
    with pytest.raises(UnknownStrategyError) as err:
        get_strategy("momentum")
    assert isinstance(err.value, KeyError)
    message = str(err.value)
    assert "'momentum'" in message
    assert "breakout, mean_reversion, trend" in message


def test_defaults_and_names_follow_declaration_order() -> None:
    assert SPACE.names == ("lookback", "threshold")
    np.testing.assert_array_equal(SPACE.defaults(), [20.0, 0.25])
    assert SPACE.defaults().dtype == np.float64
    assert SPACE.index("threshold") == 1


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ([4, 0.5], "'lookback'"),
        ([20.5, 0.5], "'lookback'"),
        ([20, 1.5], "'threshold'"),
        ([20, float("nan")], "'threshold'"),
    ],
)
def test_validation_error_names_the_bad_param(values: list[float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        SPACE.validate(values)


def test_validation_rejects_a_vector_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="expected 2 param values"):
        SPACE.validate([20.0])


def test_validation_of_a_matrix_names_the_row() -> None:
    with pytest.raises(ValueError, match=r"'threshold'.*row 1"):
        SPACE.validate([[20, 0.5], [20, 2.0]])


def test_strategy_validation_checks_the_constraint_and_names_the_strategy() -> None:
    params = TREND.params.from_mapping({"fast_s": 120.0, "slow_s": 60.0})
    with pytest.raises(ValueError, match=r"strategy 'trend'.*constraint.*fast_s=120"):
        TREND.validate(params)
    with pytest.raises(ValueError, match=r"strategy 'trend'.*'band'"):
        TREND.validate(TREND.params.from_mapping({}) + np.array([0, 0, 1.0, 0]))


def test_param_declaration_is_checked() -> None:
    with pytest.raises(ValueError, match="outside"):
        Param("x", 0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="integer"):
        Param("n", 0.5, 10, 5, integer=True)
    with pytest.raises(ValueError, match="unique"):
        ParamSpace((Param("x", 0, 1, 0), Param("x", 0, 1, 0)))


@settings(max_examples=60, deadline=None)
@given(
    lookback=st.integers(5, 100),
    threshold=st.floats(0.0, 1.0),
    excess=st.floats(1e-6, 1e6),
    which=st.sampled_from(["lookback", "threshold"]),
)
def test_in_bounds_vectors_pass_and_out_of_bounds_ones_fail(
    lookback: int, threshold: float, excess: float, which: str
) -> None:
    ok = np.array([lookback, threshold], dtype=np.float64)
    np.testing.assert_array_equal(SPACE.validate(ok), ok)
    bad = ok.copy()
    i = SPACE.index(which)
    bad[i] = SPACE.params[i].high + excess
    with pytest.raises(ValueError, match=f"'{which}'"):
        SPACE.validate(bad)


def test_parse_grid_reads_ranges_lists_and_single_values() -> None:
    grid = parse_grid("fast_s=5:50:5, slow_s=20:200:10,band=0.0001|0.0003,min_hold_s=10")
    np.testing.assert_allclose(grid["fast_s"], np.arange(5, 51, 5))
    np.testing.assert_allclose(grid["slow_s"], np.arange(20, 201, 10))
    np.testing.assert_allclose(grid["band"], [0.0001, 0.0003])
    np.testing.assert_allclose(grid["min_hold_s"], [10.0])
    np.testing.assert_allclose(parse_grid("band=0.1:0.3:0.1")["band"], [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "text",
    ["", "fast_s", "fast_s=", "fast_s=a:2:1", "fast_s=5:1:1", "fast_s=1:5:0", "x=1:2", "x=1,x=2"],
)
def test_parse_grid_rejects_malformed_items(text: str) -> None:
    with pytest.raises(ValueError, match="grid"):
        parse_grid(text)


def test_grid_is_the_cartesian_product_minus_constraint_violations() -> None:
    sets = TREND.grid("fast_s=5:50:5,slow_s=20:200:10")
    expected = sum(1 for f in range(5, 51, 5) for s in range(20, 201, 10) if f < s)
    assert sets.shape == (expected, 4)
    assert sets.flags.c_contiguous
    fast, slow = sets[:, 0], sets[:, 1]
    assert (fast < slow).all()
    np.testing.assert_array_equal(sets[:, 2], TREND.defaults()[2])
    np.testing.assert_array_equal(sets[:, 3], TREND.defaults()[3])
    assert len({tuple(r) for r in sets}) == len(sets)


def test_grid_rejects_unknown_names_and_out_of_bounds_values() -> None:
    with pytest.raises(ValueError, match="unknown param 'fast'"):
        TREND.grid({"fast": [5, 10]})
    with pytest.raises(ValueError, match="'fast_s'"):
        TREND.grid({"fast_s": [1.0, 5.0]})


def test_mapping_round_trip() -> None:
    values = TREND.params.from_mapping({"fast_s": 20.0})
    assert TREND.params.to_mapping(values)["fast_s"] == 20.0
    assert TREND.params.to_mapping(values)["slow_s"] == TREND.defaults()[1]
