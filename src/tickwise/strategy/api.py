"""What a strategy is: a compiled step function, its parameter space, and a registry by name.

A strategy is a numba step function

    step(state: float64[:], params: float64[:], price: float64, size: float64,
         kind: int64, ts_ns: int64) -> float64

that folds one tick into `state` and returns the instrument's target weight in [0, 1]. The
weight is long-only because client accounts are cash accounts: 0 is flat, 1 is the instrument's
full portfolio weight, and nothing is ever sold short. `kind` is a `TickKind` (0 trade, 1 bid,
2 ask); quotes update the state's bid/ask, decisions are made on trades (or on the mid, for a
strategy that declares so). The state layout and the helpers every step uses live in
`tickwise.strategy.kernels`.

The same step runs live (`StrategyShard`), in the grid backtester and in the tuner, so
parameters travel as plain float64 vectors in the order of the strategy's `ParamSpace`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MAX_GRID_SETS = 5_000_000
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Param:
    """One tunable parameter: inclusive bounds, a default, and whether it takes integers only."""

    name: str
    low: float
    high: float
    default: float
    integer: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"param name {self.name!r} must be a lower-case identifier")
        if not all(math.isfinite(v) for v in (self.low, self.high, self.default)):
            raise ValueError(f"param {self.name!r}: bounds and default must be finite")
        if not self.low <= self.default <= self.high:
            raise ValueError(
                f"param {self.name!r}: default {self.default} outside [{self.low}, {self.high}]"
            )
        if self.integer and not all(
            float(v).is_integer() for v in (self.low, self.high, self.default)
        ):
            raise ValueError(f"integer param {self.name!r}: bounds and default must be integers")


@dataclass(frozen=True, slots=True)
class ParamSpace:
    """An ordered set of parameters: position i of a parameter vector is `params[i]`."""

    params: tuple[Param, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {p.name: i for i, p in enumerate(self.params)}
        if len(index) != len(self.params):
            raise ValueError("param names must be unique")
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def low(self) -> FloatArray:
        return np.array([p.low for p in self.params], dtype=np.float64)

    @property
    def high(self) -> FloatArray:
        return np.array([p.high for p in self.params], dtype=np.float64)

    def index(self, name: str) -> int:
        """Position of `name` in a parameter vector."""
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"unknown param {name!r} (known: {', '.join(self.names)})") from None

    def defaults(self) -> FloatArray:
        return np.array([p.default for p in self.params], dtype=np.float64)

    def validate(self, values: npt.ArrayLike) -> FloatArray:
        """A checked float64 copy of one vector (n_params,) or a matrix (n_sets, n_params).

        Raises ValueError naming the first bad parameter (and row, for a matrix): wrong length,
        non-finite, out of bounds, or a fraction for an integer parameter.
        """
        arr = np.array(values, dtype=np.float64, copy=True, order="C")
        if arr.ndim not in (1, 2) or arr.shape[-1] != len(self.params):
            raise ValueError(
                f"expected {len(self.params)} param values ({', '.join(self.names)}), "
                f"got shape {arr.shape}"
            )
        rows = arr.reshape(-1, len(self.params))
        for i, p in enumerate(self.params):
            col = rows[:, i]
            bad = ~np.isfinite(col) | (col < p.low) | (col > p.high)
            if p.integer:
                bad |= col != np.round(col)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                where = f" (row {r})" if arr.ndim == 2 else ""
                kind = "an integer " if p.integer else ""
                raise ValueError(
                    f"param {p.name!r} = {col[r]!r}{where} must be {kind}in [{p.low}, {p.high}]"
                )
        return arr

    def from_mapping(self, values: Mapping[str, float]) -> FloatArray:
        """A validated vector from name -> value; names not given take their defaults."""
        vec = self.defaults()
        for name, value in values.items():
            vec[self.index(name)] = value
        return self.validate(vec)

    def to_mapping(self, values: npt.ArrayLike) -> dict[str, float]:
        vec = self.validate(values)
        if vec.ndim != 1:
            raise ValueError("to_mapping takes one parameter vector")
        return {name: float(v) for name, v in zip(self.names, vec, strict=True)}

    def grid(
        self,
        spec: Mapping[str, Sequence[float] | npt.ArrayLike] | str,
        constraint: Callable[[FloatArray], bool] | None = None,
    ) -> FloatArray:
        """The cartesian product of `spec` (name -> values) as an (n_sets, n_params) matrix.

        Parameters not named take their default; a string spec is read with `parse_grid`. Every
        value is checked against its bounds; sets failing `constraint` (e.g. fast < slow) are
        dropped. Rows come in lexicographic order of the parameters' declared order.
        """
        axes_by_name = parse_grid(spec) if isinstance(spec, str) else dict(spec)
        for name in axes_by_name:
            self.index(name)
        axes: list[FloatArray] = []
        for p, default in zip(self.params, self.defaults(), strict=True):
            raw = axes_by_name.get(p.name, [default])
            axis = np.unique(np.asarray(raw, dtype=np.float64).ravel())
            if axis.size == 0:
                raise ValueError(f"grid axis {p.name!r} is empty")
            axes.append(axis)
        n_sets = math.prod(a.size for a in axes)
        if n_sets > MAX_GRID_SETS:
            raise ValueError(f"grid of {n_sets} sets exceeds the limit of {MAX_GRID_SETS}")
        mesh = np.meshgrid(*axes, indexing="ij")
        sets = np.stack([m.ravel() for m in mesh], axis=1)
        sets = self.validate(sets)
        if constraint is not None and len(sets):
            keep = np.fromiter((bool(constraint(row)) for row in sets), bool, len(sets))
            sets = np.ascontiguousarray(sets[keep])
        return sets


def _parse_number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"grid {where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"grid {where}: {text!r} is not finite")
    return value


def _parse_axis(name: str, text: str) -> FloatArray:
    if "|" in text:
        return np.array([_parse_number(t, name) for t in text.split("|")], dtype=np.float64)
    parts = text.split(":")
    if len(parts) == 1:
        return np.array([_parse_number(parts[0], name)], dtype=np.float64)
    if len(parts) != 3:
        raise ValueError(f"grid {name}: expected low:high:step, got {text!r}")
    low, high, step = (_parse_number(t, name) for t in parts)
    if step <= 0 or high < low:
        raise ValueError(f"grid {name}: need step > 0 and high >= low in {text!r}")
    count = math.floor((high - low) / step + 1e-9) + 1
    if count > MAX_GRID_SETS:
        raise ValueError(f"grid {name}: {count} values is too many")
    return np.round(low + step * np.arange(count, dtype=np.float64), 12)


def parse_grid(text: str) -> dict[str, FloatArray]:
    """Read a grid such as "fast_s=5:50:5,slow_s=20:200:10,band=0.0002|0.0005".

    Each comma-separated item is `name=value`, `name=low:high:step` (high included when it
    falls on the step) or `name=v1|v2|...`. Raises ValueError saying which item is wrong.
    """
    out: dict[str, FloatArray] = {}
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, sep, values = (s.strip() for s in item.partition("="))
        if not sep or not name or not values:
            raise ValueError(f"grid item {item!r} must look like name=low:high:step")
        if name in out:
            raise ValueError(f"grid names {name!r} twice")
        out[name] = _parse_axis(name, values)
    if not out:
        raise ValueError("empty grid")
    return out


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A registered strategy: its compiled step, parameter space and state size.

    `family` names the step kernel: strategies of one family (e.g. presets with other
    defaults) share a kernel and can share one state matrix. `init_state(state, params)` puts a
    fresh state in place (njit). `constraint(params) -> bool` rejects inconsistent sets (njit
    or plain Python). `warmup_s(params)` says how long the strategy needs before it trades, for
    replaying history into a fresh shard.
    """

    name: str
    family: str
    params: ParamSpace
    state_size: int
    step: Any
    init_state: Any
    constraint: Callable[[FloatArray], bool] | None = None
    warmup_param: str = ""
    description: str = ""

    def validate(self, values: npt.ArrayLike) -> FloatArray:
        """Bounds-checked params (vector or matrix) that also satisfy the constraint."""
        try:
            arr = self.params.validate(values)
        except ValueError as exc:
            raise ValueError(f"strategy {self.name!r}: {exc}") from None
        if self.constraint is not None:
            for r, row in enumerate(arr.reshape(-1, len(self.params))):
                if not self.constraint(row):
                    shown = ", ".join(
                        f"{n}={v:g}" for n, v in zip(self.params.names, row, strict=True)
                    )
                    where = f" (row {r})" if arr.ndim == 2 else ""
                    raise ValueError(
                        f"strategy {self.name!r}: params{where} break its constraint: {shown}"
                    )
        return arr

    def defaults(self) -> FloatArray:
        return self.params.defaults()

    def grid(self, spec: Mapping[str, Sequence[float] | npt.ArrayLike] | str) -> FloatArray:
        return self.params.grid(spec, self.constraint)

    def new_states(self, params: npt.ArrayLike) -> FloatArray:
        """Fresh states, one row per parameter set (params: vector or (n, n_params) matrix)."""
        rows = self.params.validate(params).reshape(-1, len(self.params))
        states = np.empty((rows.shape[0], self.state_size), dtype=np.float64)
        for state, row in zip(states, rows, strict=True):
            self.init_state(state, row)
        return states

    def warmup_s(self, params: npt.ArrayLike) -> float:
        """Seconds of ticks the strategy needs before it may trade with `params`."""
        if not self.warmup_param:
            return 0.0
        vec = self.params.validate(params)
        return float(vec[..., self.params.index(self.warmup_param)].max())


STRATEGIES: dict[str, StrategySpec] = {}


def register_strategy(spec: StrategySpec) -> StrategySpec:
    """Add `spec` to `STRATEGIES`; a name can be registered only once."""
    if spec.name in STRATEGIES and STRATEGIES[spec.name] is not spec:
        raise ValueError(f"strategy {spec.name!r} is already registered")
    STRATEGIES[spec.name] = spec
    return spec


class UnknownStrategyError(KeyError, ValueError):
    """A strategy name that is not registered; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def get_strategy(name: str) -> StrategySpec:
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES)) or "none"
        raise UnknownStrategyError(f"unknown strategy {name!r} (known: {known})") from None


def strategy_names() -> Iterable[str]:
    return tuple(sorted(STRATEGIES))


__all__ = [
    "STRATEGIES",
    "Param",
    "ParamSpace",
    "StrategySpec",
    "UnknownStrategyError",
    "get_strategy",
    "parse_grid",
    "register_strategy",
    "strategy_names",
]
