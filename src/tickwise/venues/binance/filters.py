"""Binance Spot symbol filters from `GET /api/v3/exchangeInfo`, checked and applied per batch.

`parse_exchange_info` turns the document into `SymbolRules` (numpy columns, one row per
symbol) for the filters the adapter enforces before sending (venues.md §3.7): PRICE_FILTER,
LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL and NOTIONAL. Other filters are kept, unchecked.
A value of 0 disables a bound, as on the venue.

Steps are held exactly as `num / den` with `den` a power of ten, so rounding works in whole
step units (`0.3 / 0.1` is 2.9999999999999996 in floats, but three steps here).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from tickwise.model.orders import RejectReason

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

MAX_STEP_DECIMALS = 15  # finer steps are not exact in float64 units
NOTIONAL_RTOL = 1e-12  # float price × qty may miss an exact decimal boundary by an ulp or two
_EPS = float(np.finfo(np.float64).eps)


class ExchangeInfoError(ValueError):
    """An exchangeInfo document that cannot be read; the message names symbol and filter."""


class Filter(IntEnum):
    """The filter an order failed first (NONE when it passed)."""

    NONE = 0
    SYMBOL = 1  # not listed, or not TRADING
    ORDER = 2  # malformed: side, non-positive or non-finite qty or price
    PRICE_FILTER = 3
    LOT_SIZE = 4
    MARKET_LOT_SIZE = 5
    MIN_NOTIONAL = 6
    NOTIONAL = 7


@dataclass(frozen=True, slots=True)
class Grid:
    """A bounded grid per symbol (price or quantity): `lo ≤ x ≤ hi`, `x = k · num / den`."""

    lo: F64
    hi: F64
    step: F64
    num: I64
    den: I64

    @property
    def stepped(self) -> BOOL:
        return np.asarray(self.num > 0, np.bool_)


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """The enforced filters of every symbol, one row per symbol in document order."""

    symbols: tuple[str, ...]
    trading: BOOL
    price: Grid
    lot: Grid
    market_lot: Grid
    min_notional: F64
    min_notional_market: BOOL
    max_notional: F64
    max_notional_market: BOOL
    min_notional_filter: npt.NDArray[np.int8]  # Filter.MIN_NOTIONAL or NOTIONAL, 0 if none
    ignored: tuple[tuple[Mapping[str, object], ...], ...]  # other filters, per symbol

    def __len__(self) -> int:
        return len(self.symbols)

    def index(self, symbol: str) -> int:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise KeyError(f"symbol {symbol!r} is not in the exchangeInfo rules") from None


# --- parsing -----------------------------------------------------------------------------

_GRID_FIELDS = {
    "PRICE_FILTER": ("minPrice", "maxPrice", "tickSize"),
    "LOT_SIZE": ("minQty", "maxQty", "stepSize"),
    "MARKET_LOT_SIZE": ("minQty", "maxQty", "stepSize"),
}


def _decimal(raw: object, where: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ExchangeInfoError(f"{where}: expected a decimal string, got {raw!r}")
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):  # ValueError: an int too long to write out
        raise ExchangeInfoError(f"{where}: {raw!r:.40} is not a decimal number") from None
    # A bound beyond float64 (1e400) would become an infinite limit, and a step that large
    # overflows the decimal context when normalised.
    if not value.is_finite() or value < 0 or not math.isfinite(float(value)):
        raise ExchangeInfoError(f"{where}: {raw!r:.40} is not a finite non-negative number")
    return value


def _field(f: Mapping[str, object], name: str, where: str) -> object:
    if name not in f:
        raise ExchangeInfoError(f"{where}: missing field {name!r}")
    return f[name]


def _step_units(step: Decimal, where: str) -> tuple[int, int]:
    """`step` as (num, den) with den = 10**d; (0, 1) when the step is disabled."""
    if step == 0:
        return 0, 1
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked by _decimal
    decimals = max(0, -exponent)
    if decimals > MAX_STEP_DECIMALS:
        raise ExchangeInfoError(f"{where}: step {step} has more than {MAX_STEP_DECIMALS} decimals")
    num = int(step.scaleb(decimals))
    if num >= 2**53:
        raise ExchangeInfoError(f"{where}: step {step} is too large")
    return num, 10**decimals


def _flag(f: Mapping[str, object], name: str, where: str, default: bool) -> bool:
    raw = f.get(name, default)
    if not isinstance(raw, bool):
        raise ExchangeInfoError(f"{where}: {name} should be true or false, got {raw!r}")
    return raw


class _Columns:
    def __init__(self) -> None:
        self.cols: dict[str, list[float | int | bool]] = {}

    def add(self, **values: float | int | bool) -> None:
        for k, v in values.items():
            self.cols.setdefault(k, []).append(v)


def _grid_row(f: Mapping[str, object] | None, kind: str, where: str) -> dict[str, float | int]:
    if f is None:
        return {"lo": 0.0, "hi": 0.0, "step": 0.0, "num": 0, "den": 1}
    lo_name, hi_name, step_name = _GRID_FIELDS[kind]
    lo = _decimal(_field(f, lo_name, where), f"{where} {lo_name}")
    hi = _decimal(_field(f, hi_name, where), f"{where} {hi_name}")
    step = _decimal(_field(f, step_name, where), f"{where} {step_name}")
    if hi != 0 and lo > hi:
        raise ExchangeInfoError(f"{where}: {lo_name} {lo} is above {hi_name} {hi}")
    num, den = _step_units(step, f"{where} {step_name}")
    return {"lo": float(lo), "hi": float(hi), "step": float(step), "num": num, "den": den}


def parse_exchange_info(document: str | bytes | Mapping[str, object]) -> SymbolRules:
    """`SymbolRules` from an exchangeInfo answer (raw JSON text or already decoded)."""
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except (ValueError, RecursionError) as exc:
            raise ExchangeInfoError(f"exchangeInfo is not valid JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise ExchangeInfoError("exchangeInfo should be a JSON object")
    entries = document.get("symbols")
    if not isinstance(entries, list):
        raise ExchangeInfoError("exchangeInfo has no 'symbols' list")

    symbols: list[str] = []
    ignored: list[tuple[Mapping[str, object], ...]] = []
    rows = {"price": _Columns(), "lot": _Columns(), "market_lot": _Columns(), "rest": _Columns()}
    for pos, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ExchangeInfoError(f"exchangeInfo symbols[{pos}] is not an object")
        name = entry.get("symbol")
        if not isinstance(name, str) or not name:
            raise ExchangeInfoError(f"exchangeInfo symbols[{pos}] has no symbol name")
        if name in symbols:
            raise ExchangeInfoError(f"exchangeInfo lists symbol {name} twice")
        status = entry.get("status", "TRADING")
        if not isinstance(status, str):
            raise ExchangeInfoError(f"symbol {name}: status {status!r} is not a string")
        raw_filters = entry.get("filters", [])
        if not isinstance(raw_filters, list):
            raise ExchangeInfoError(f"symbol {name}: 'filters' is not a list")

        known: dict[str, Mapping[str, object]] = {}
        others: list[Mapping[str, object]] = []
        for f in raw_filters:
            kind = f.get("filterType") if isinstance(f, Mapping) else None
            if not isinstance(f, Mapping) or not isinstance(kind, str):
                raise ExchangeInfoError(f"symbol {name}: filter {f!r:.60} has no filterType")
            if kind in _GRID_FIELDS or kind in ("MIN_NOTIONAL", "NOTIONAL"):
                if kind in known:
                    raise ExchangeInfoError(f"symbol {name}: filter {kind} appears twice")
                known[kind] = f
            else:
                others.append(f)

        for key, kind in (("price", "PRICE_FILTER"), ("lot", "LOT_SIZE")):
            rows[key].add(**_grid_row(known.get(kind), kind, f"symbol {name} {kind}"))
        rows["market_lot"].add(
            **_grid_row(
                known.get("MARKET_LOT_SIZE"), "MARKET_LOT_SIZE", f"symbol {name} MARKET_LOT_SIZE"
            )
        )
        rows["rest"].add(trading=status == "TRADING", **_notional_row(known, name))
        symbols.append(name)
        ignored.append(tuple(others))

    def grid(c: _Columns) -> Grid:
        return Grid(
            lo=np.asarray(c.cols.get("lo", []), np.float64),
            hi=np.asarray(c.cols.get("hi", []), np.float64),
            step=np.asarray(c.cols.get("step", []), np.float64),
            num=np.asarray(c.cols.get("num", []), np.int64),
            den=np.asarray(c.cols.get("den", []), np.int64),
        )

    rest = rows["rest"].cols
    return SymbolRules(
        symbols=tuple(symbols),
        trading=np.asarray(rest.get("trading", []), np.bool_),
        price=grid(rows["price"]),
        lot=grid(rows["lot"]),
        market_lot=grid(rows["market_lot"]),
        min_notional=np.asarray(rest.get("min_notional", []), np.float64),
        min_notional_market=np.asarray(rest.get("min_market", []), np.bool_),
        max_notional=np.asarray(rest.get("max_notional", []), np.float64),
        max_notional_market=np.asarray(rest.get("max_market", []), np.bool_),
        min_notional_filter=np.asarray(rest.get("min_filter", []), np.int8),
        ignored=tuple(ignored),
    )


def _notional_row(known: Mapping[str, Mapping[str, object]], name: str) -> dict[str, float | bool]:
    """NOTIONAL (current) wins over MIN_NOTIONAL (older) when a symbol has both."""
    if "NOTIONAL" in known:
        f, where = known["NOTIONAL"], f"symbol {name} NOTIONAL"
        lo = _decimal(_field(f, "minNotional", where), f"{where} minNotional")
        hi = _decimal(_field(f, "maxNotional", where), f"{where} maxNotional")
        if hi != 0 and lo > hi:
            raise ExchangeInfoError(f"{where}: minNotional {lo} is above maxNotional {hi}")
        return {
            "min_notional": float(lo),
            "min_market": _flag(f, "applyMinToMarket", where, True),
            "max_notional": float(hi),
            "max_market": _flag(f, "applyMaxToMarket", where, False),
            "min_filter": int(Filter.NOTIONAL),
        }
    if "MIN_NOTIONAL" in known:
        f, where = known["MIN_NOTIONAL"], f"symbol {name} MIN_NOTIONAL"
        lo = _decimal(_field(f, "minNotional", where), f"{where} minNotional")
        return {
            "min_notional": float(lo),
            "min_market": _flag(f, "applyToMarket", where, True),
            "max_notional": 0.0,
            "max_market": False,
            "min_filter": int(Filter.MIN_NOTIONAL),
        }
    return {
        "min_notional": 0.0,
        "min_market": False,
        "max_notional": 0.0,
        "max_market": False,
        "min_filter": 0,
    }


# --- checks and rounding -----------------------------------------------------------------


def _units(x: F64, num: I64) -> F64:
    """x in step units (float), for symbols whose step is enabled."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(x / np.where(num > 0, num, 1), np.float64)


def _on_grid(x: F64, num: I64, den: I64) -> BOOL:
    """x is a whole number of steps, up to float rounding of x itself."""
    r = _units(x * den.astype(np.float64), num)
    k = np.rint(r)
    tol = 1e-9 + 8 * _EPS * np.abs(r)
    return np.asarray((num == 0) | (np.abs(r - k) <= tol), np.bool_)


def _in_range(x: F64, lo: F64, hi: F64) -> BOOL:
    return np.asarray((x >= lo) & ((hi == 0) | (x <= hi)), np.bool_)


FILTER_REJECT_REASON: dict[Filter, RejectReason] = {
    Filter.NONE: RejectReason.NONE,
    Filter.SYMBOL: RejectReason.UNKNOWN_SYMBOL,
    Filter.ORDER: RejectReason.VENUE_ERROR,
    Filter.PRICE_FILTER: RejectReason.VENUE_ERROR,
    Filter.LOT_SIZE: RejectReason.INVALID_QUANTITY_INCREMENT,
    Filter.MARKET_LOT_SIZE: RejectReason.INVALID_QUANTITY_INCREMENT,
    Filter.MIN_NOTIONAL: RejectReason.BELOW_MIN_NOTIONAL,
    Filter.NOTIONAL: RejectReason.BELOW_MIN_NOTIONAL,
}
_REASON_OF_FILTER = np.array([FILTER_REJECT_REASON[f] for f in Filter], np.int8)


def failed_filter(
    rules: SymbolRules,
    symbol_idx: npt.ArrayLike,
    side: npt.ArrayLike,
    qty: npt.ArrayLike,
    price: npt.ArrayLike,
    is_market: npt.ArrayLike,
) -> npt.NDArray[np.int8]:
    """The first `Filter` each order fails, in the venue's order of checks (NONE if it passes).

    `price` is the limit price, or for MARKET orders the reference price the notional filters
    use (the average price over `avgPriceMins` on the venue).
    """
    idx = np.asarray(symbol_idx, np.int64)
    qty_a = np.asarray(qty, np.float64)
    px = np.asarray(price, np.float64)
    mkt = np.broadcast_to(np.asarray(is_market, np.bool_), idx.shape)
    sd = np.broadcast_to(np.asarray(side), idx.shape)
    if not (qty_a.shape == px.shape == idx.shape) or idx.ndim != 1:
        raise ValueError(
            f"orders need 1-d columns of one length: symbol_idx {idx.shape}, qty {qty_a.shape}, "
            f"price {px.shape}"
        )
    out = np.zeros(idx.shape, np.int8)

    def flag(bad: npt.ArrayLike, which: Filter) -> None:
        out[np.asarray(bad, np.bool_) & (out == Filter.NONE)] = which

    listed = (idx >= 0) & (idx < len(rules))
    s = np.where(listed, idx, 0)
    if len(rules) == 0:
        flag(np.ones(idx.shape, np.bool_), Filter.SYMBOL)
        return out
    flag(~(listed & rules.trading[s]), Filter.SYMBOL)
    good = np.isfinite(qty_a) & (qty_a > 0) & np.isfinite(px) & (px > 0) & ((sd == 1) | (sd == -1))
    flag(~good, Filter.ORDER)

    p = rules.price
    price_ok = _in_range(px, p.lo[s], p.hi[s]) & _on_grid(px, p.num[s], p.den[s])
    flag(~mkt & ~price_ok, Filter.PRICE_FILTER)

    for grid, which, applies in (
        (rules.lot, Filter.LOT_SIZE, np.ones(idx.shape, np.bool_)),
        (rules.market_lot, Filter.MARKET_LOT_SIZE, mkt),
    ):
        ok = _in_range(qty_a, grid.lo[s], grid.hi[s]) & _on_grid(qty_a, grid.num[s], grid.den[s])
        flag(applies & ~ok, which)

    notional = qty_a * px
    lo = rules.min_notional[s]
    below = (
        (lo > 0) & (notional < lo * (1.0 - NOTIONAL_RTOL)) & (~mkt | rules.min_notional_market[s])
    )
    hi = rules.max_notional[s]
    above = (
        (hi > 0) & (notional > hi * (1.0 + NOTIONAL_RTOL)) & (~mkt | rules.max_notional_market[s])
    )
    filt = rules.min_notional_filter[s]
    out[below & (out == Filter.NONE)] = filt[below & (out == Filter.NONE)]
    flag(above, Filter.NOTIONAL)
    return out


def check_orders(
    rules: SymbolRules,
    symbol_idx: npt.ArrayLike,
    side: npt.ArrayLike,
    qty: npt.ArrayLike,
    price: npt.ArrayLike,
    is_market: npt.ArrayLike,
) -> tuple[BOOL, npt.NDArray[np.int8]]:
    """(passes, `RejectReason` per order) for a batch; see `failed_filter` for which filter."""
    which = failed_filter(rules, symbol_idx, side, qty, price, is_market)
    return np.asarray(which == Filter.NONE, np.bool_), _REASON_OF_FILTER[which]


def _floor_to(x: F64, num: I64, den: I64) -> F64:
    """The largest whole number of steps not above x (x itself where the step is 0)."""
    dn = den.astype(np.float64)
    r = _units(x * dn, num)
    near = np.rint(r)
    k = np.where(np.abs(r - near) <= 1e-9 + 8 * _EPS * np.abs(r), near, np.floor(r))
    value = k * num / dn
    # Step back once where float division overshot by more than the snapping tolerance: a
    # float a hair below a grid point (0.7 - 0.4 = 0.29999999999999993) IS that grid point;
    # rounding it a whole step down would leave dust behind on every full exit.
    over = (value - x) * dn / np.maximum(num, 1)
    k = np.where(over > 1e-9, k - 1, k)
    value = k * num / dn
    return np.asarray(np.where(num > 0, np.maximum(value, 0.0), x), np.float64)


def _nearest(x: F64, num: I64, den: I64) -> F64:
    dn = den.astype(np.float64)
    k = np.rint(_units(x * dn, num))
    return np.asarray(np.where(num > 0, k * num / dn, x), np.float64)


def _columns(symbol_idx: npt.ArrayLike, x: npt.ArrayLike, n: int) -> tuple[I64, F64]:
    idx = np.asarray(symbol_idx, np.int64)
    values = np.asarray(x, np.float64)
    if idx.shape != values.shape:
        raise ValueError(f"symbol_idx {idx.shape} and values {values.shape} differ in shape")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"symbol index out of range 0..{n - 1}")
    return idx, values


def round_quantity(
    rules: SymbolRules,
    symbol_idx: npt.ArrayLike,
    qty: npt.ArrayLike,
    is_market: npt.ArrayLike = False,
) -> F64:
    """Quantities floored to the symbol's step (MARKET_LOT_SIZE's for market orders, if set).

    Never above the input by more than 1e-9 of a step: a float a hair below a grid point is
    that grid point (0.7 - 0.4 sells 0.3, not 0.299). Negative quantities give 0; NaN stays NaN.
    """
    idx, q = _columns(symbol_idx, qty, len(rules))
    mkt = np.broadcast_to(np.asarray(is_market, np.bool_), idx.shape)
    use_market = mkt & (rules.market_lot.num[idx] > 0)
    num = np.where(use_market, rules.market_lot.num[idx], rules.lot.num[idx])
    den = np.where(use_market, rules.market_lot.den[idx], rules.lot.den[idx])
    return _floor_to(q, num, den)


def round_price(rules: SymbolRules, symbol_idx: npt.ArrayLike, price: npt.ArrayLike) -> F64:
    """Prices rounded to the nearest tick (ties to even)."""
    idx, p = _columns(symbol_idx, price, len(rules))
    return _nearest(p, rules.price.num[idx], rules.price.den[idx])


def format_steps(value: float, step_den: int) -> str:
    """A rounded value as the decimal string to send, with the step's number of decimals."""
    if not math.isfinite(value):
        raise ValueError(f"cannot send {value!r} as a decimal")
    decimals = len(str(step_den)) - 1
    return f"{value:.{decimals}f}"


def symbol_indices(rules: SymbolRules, names: Sequence[str]) -> I64:
    """Row of each symbol name, -1 where the rules do not list it (fails the SYMBOL check)."""
    rows = {name: i for i, name in enumerate(rules.symbols)}
    return np.array([rows.get(n, -1) for n in names], np.int64)
