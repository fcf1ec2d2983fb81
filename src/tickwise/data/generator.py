"""A synthetic market that looks like the real one, fast enough to feed the engine live.

What it models (figures calibrated on real ticks, see docs/market-data.md):

- Activity is skewed: instrument shares of the tick flow follow a Zipf law within each asset
  class (famous names, which come first in the universe, trade the most).
- Arrivals are bursty: each instrument's intensity follows a log-normal regime (an AR(1) in log
  intensity) that also rises with its volatility, and ticks arrive in clusters (a Neyman-Scott
  process, the branching picture of a self-exciting Hawkes process): a sweep of trades or a run
  of quote updates within a fraction of a millisecond.
- Prices: a log mid-price per instrument with GARCH(1,1) variance updated every second, rare
  normal jumps, and optional drift / mean reversion (`set_regime`). Quotes sit a per-instrument
  spread around the mid, on the tick grid; a quote tick moves one side, and a move that would
  cross the book also moves the other side (two ticks, same time). Trades print at the last
  published bid or ask, so bid < ask always holds and every trade is at the touch.
- Crypto trades 24/7; equities are always in session by default, or only 09:30-16:00 New York
  on weekdays with `equity_hours="real"`.

Time is cut into fixed blocks (`block_ms`) from the first clock reading; each block is generated
in one vectorised step (numpy draws, one numba pass for the price path), so the output depends
only on the seed and on when `burst`/`set_regime` were called, never on how often the feed
polls. `next_batch` costs about one block of work per `block_ms` of wall time.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import numpy.typing as npt

from tickwise.data.readers import NEW_YORK
from tickwise.data.universe import universe_prices
from tickwise.model.instruments import AssetClass, InstrumentRegistry
from tickwise.model.ticks import TickBatch

SECOND_NS = 1_000_000_000
_SESSION_OPEN_S = 9.5 * 3600
_SESSION_CLOSE_S = 16.0 * 3600


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Knobs of the synthetic market; defaults are the calibrated figures (docs/market-data.md)."""

    tick_rate: float = 20_000.0  # all ticks (trades + quote updates) per second, whole universe
    quote_to_trade: float = 4.68  # equities: median of BAC, IBM, AIG quote rows per trade
    crypto_quote_to_trade: float = 3.1  # gives 3.7 measured (Binance, with book re-crossing)
    crypto_share: float = 0.15  # share of the tick flow on crypto pairs
    zipf_exponent: float = 0.9  # activity share of the k-th name ~ k**-exponent
    cluster_mean_size: float = 3.0  # ticks per cluster (trade sweeps, quote runs)
    cluster_gap_us: float = 150.0  # mean gap between ticks inside a cluster
    activity_sd: float = 1.1  # std of log intensity (regime)
    activity_half_life_s: float = 30.0  # how long a busy or quiet regime lasts
    activity_vol_elasticity: float = 0.5  # intensity ~ (variance / long-run variance) ** this
    equity_vol_bps: float = 0.4  # median 1-second volatility of the mid, bps (before bounce)
    crypto_vol_bps: float = 1.0
    vol_dispersion: float = 0.35  # log-normal spread of per-instrument volatility
    garch_alpha: float = 0.10  # per-second GARCH(1,1) reaction
    garch_beta: float = 0.88  # per-second GARCH(1,1) persistence
    jumps_per_hour: float = 12.0  # per instrument
    jump_bps: float = 15.0  # std of a jump
    equity_spread_bps: float = 1.8  # at median activity; measured output ~2.2 bps = IBM, AIG
    crypto_spread_bps: float = 0.02  # Binance majors trade at a one-tick spread
    spread_dispersion: float = 0.4
    spread_liquidity_exponent: float = 0.3  # spread ~ (activity share / median share) ** -this
    trade_side_persistence: float = 0.9  # chance a trade sweep hits the same side as the last
    equity_trade_shares: float = 100.0  # median trade size (log-normal)
    crypto_trade_usd: float = 500.0
    equity_hours: Literal["always", "real"] = "always"
    block_ms: float = 10.0

    def __post_init__(self) -> None:
        if not self.tick_rate >= 0.0:
            raise ValueError("tick_rate must be >= 0")
        if not self.block_ms > 0.0:
            raise ValueError("block_ms must be > 0")
        if not self.cluster_mean_size >= 1.0:
            raise ValueError("cluster_mean_size must be >= 1")
        if not 0.0 <= self.crypto_share <= 1.0:
            raise ValueError("crypto_share must be in [0, 1]")
        if not (
            self.garch_alpha >= 0
            and self.garch_beta >= 0
            and self.garch_alpha + self.garch_beta < 1
        ):
            raise ValueError("GARCH needs alpha, beta >= 0 and alpha + beta < 1")
        if self.equity_hours not in ("always", "real"):
            raise ValueError("equity_hours must be 'always' or 'real'")


@numba.njit(cache=True, inline="always")
def _emit(
    out_inst: npt.NDArray[np.uint32],
    out_t: npt.NDArray[np.int64],
    out_price: npt.NDArray[np.float64],
    out_size: npt.NDArray[np.float64],
    out_kind: npt.NDArray[np.uint8],
    n_out: int,
    inst: int,
    t: int,
    price: float,
    size: float,
    kind: int,
) -> int:
    out_inst[n_out] = inst
    out_t[n_out] = t
    out_price[n_out] = price
    out_size[n_out] = size
    out_kind[n_out] = kind
    return n_out + 1


@numba.njit(cache=True)
def _price_path(
    inst: npt.NDArray[np.int64],
    t: npt.NDArray[np.int64],
    kind: npt.NDArray[np.uint8],
    z: npt.NDArray[np.float64],
    jump: npt.NDArray[np.float64],
    head: npt.NDArray[np.bool_],
    flip: npt.NDArray[np.bool_],
    trade_size: npt.NDArray[np.float64],
    quote_size: npt.NDArray[np.float64],
    log_mid: npt.NDArray[np.float64],
    last_t: npt.NDArray[np.int64],
    var: npt.NDArray[np.float64],
    drift: npt.NDArray[np.float64],
    reversion: npt.NDArray[np.float64],
    anchor: npt.NDArray[np.float64],
    tick: npt.NDArray[np.float64],
    half_spread: npt.NDArray[np.float64],
    bid_units: npt.NDArray[np.int64],
    ask_units: npt.NDArray[np.int64],
    sum_r: npt.NDArray[np.float64],
    buying: npt.NDArray[np.bool_],
    out_inst: npt.NDArray[np.uint32],
    out_t: npt.NDArray[np.int64],
    out_price: npt.NDArray[np.float64],
    out_size: npt.NDArray[np.float64],
    out_kind: npt.NDArray[np.uint8],
) -> int:
    """Walk ticks (grouped by instrument, time-sorted within) and price them; returns the count.

    Moves each instrument's log mid by its diffusion, drift / reversion and jumps since its
    previous tick, then publishes a side (quotes) or prints at the published touch (trades).
    A trade sweep keeps the side of the instrument's previous sweep unless `flip` says
    otherwise (order flow is persistent). `sum_r` gathers the diffusive shocks for GARCH.
    """
    n_out = 0
    for k in range(inst.size):
        i = inst[k]
        dt_s = (t[k] - last_t[i]) / 1e9
        if dt_s < 0.0:
            dt_s = 0.0
        mu = drift[i] - reversion[i] * (log_mid[i] - anchor[i])
        shock = math.sqrt(var[i] * dt_s) * z[k]
        log_mid[i] += mu * dt_s + shock + jump[k]
        sum_r[i] += shock  # GARCH reacts to surprises, not to a planted drift or jumps
        last_t[i] = t[k]
        mid = math.exp(log_mid[i])
        theo_bid = max(1, math.floor(mid * (1.0 - half_spread[i]) / tick[i] + 1e-9))
        theo_ask = max(theo_bid + 1, math.ceil(mid * (1.0 + half_spread[i]) / tick[i] - 1e-9))
        if kind[k] == 0:
            if head[k] and flip[k]:
                buying[i] = not buying[i]
            units = ask_units[i] if buying[i] else bid_units[i]
            n_out = _emit(out_inst, out_t, out_price, out_size, out_kind, n_out,
                          i, t[k], units * tick[i], trade_size[k], 0)  # fmt: skip
            continue
        # A move that would cross the book first moves the other side out of the way (an
        # extra tick, same time), so the book seen tick by tick is never crossed.
        if kind[k] == 1:
            if theo_bid >= ask_units[i]:
                ask_units[i] = max(theo_ask, theo_bid + 1)
                n_out = _emit(out_inst, out_t, out_price, out_size, out_kind, n_out,
                              i, t[k], ask_units[i] * tick[i], quote_size[k], 2)  # fmt: skip
            bid_units[i] = theo_bid
            price = bid_units[i] * tick[i]
        else:
            if theo_ask <= bid_units[i]:
                bid_units[i] = min(theo_bid, theo_ask - 1)
                n_out = _emit(out_inst, out_t, out_price, out_size, out_kind, n_out,
                              i, t[k], bid_units[i] * tick[i], quote_size[k], 1)  # fmt: skip
            ask_units[i] = theo_ask
            price = ask_units[i] * tick[i]
        n_out = _emit(out_inst, out_t, out_price, out_size, out_kind, n_out,
                      i, t[k], price, quote_size[k], kind[k])  # fmt: skip
    return n_out


class MarketGenerator:
    """Synthetic ticks for every instrument of a registry, on demand, deterministic by seed."""

    def __init__(
        self,
        registry: InstrumentRegistry,
        config: GeneratorConfig | None = None,
        seed: int = 7,
        start_prices: npt.NDArray[np.float64] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config = config or GeneratorConfig()
        self._rng = np.random.default_rng([seed, 0x71C4])
        n = len(registry)
        crypto = registry.asset_class == AssetClass.CRYPTO
        self._is_equity = ~crypto
        prices = universe_prices(registry, seed) if start_prices is None else start_prices
        self._tick = registry.tick_size.astype(np.float64).copy()
        self._lot = registry.lot_size.astype(np.float64).copy()

        # Activity: Zipf shares within each asset class, split by `crypto_share`.
        share = np.zeros(n)
        for mask, total in ((~crypto, 1.0 - config.crypto_share), (crypto, config.crypto_share)):
            idx = np.flatnonzero(mask)
            if idx.size:
                w = (np.arange(idx.size) + 1.0) ** -config.zipf_exponent
                share[idx] = w / w.sum() * (total if crypto.any() and (~crypto).any() else 1.0)
        self.share = share
        q = np.where(crypto, config.crypto_quote_to_trade, config.quote_to_trade)
        self._p_trade_cluster = 1.0 / (1.0 + q)

        # Volatility (per-second variance of the log mid) and spread, per instrument.
        vol_bps = np.where(crypto, config.crypto_vol_bps, config.equity_vol_bps)
        vol = vol_bps * 1e-4 * np.exp(config.vol_dispersion * self._rng.standard_normal(n))
        self._var_bar = vol**2
        self._var = self._var_bar.copy()
        base_spread = np.where(crypto, config.crypto_spread_bps, config.equity_spread_bps)
        median_share = np.median(share[share > 0]) if (share > 0).any() else 1.0
        liquidity = np.maximum(share, 1e-12) / median_share
        spread_bps = (
            base_spread
            * liquidity**-config.spread_liquidity_exponent
            * np.exp(config.spread_dispersion * self._rng.standard_normal(n))
        )
        self._half_spread = spread_bps * 1e-4 / 2.0

        self._log_mid = np.log(np.maximum(prices, self._tick))
        self._drift = np.zeros(n)
        self._reversion = np.zeros(n)
        self._anchor = self._log_mid.copy()
        mid = np.exp(self._log_mid)
        self._bid_units = np.maximum(1, np.floor(mid * (1 - self._half_spread) / self._tick))
        self._bid_units = self._bid_units.astype(np.int64)
        ask = np.ceil(mid * (1 + self._half_spread) / self._tick).astype(np.int64)
        self._ask_units = np.maximum(ask, self._bid_units + 1)
        self._log_activity = config.activity_sd * self._rng.standard_normal(n)
        self._sum_r = np.zeros(n)
        self._buying = self._rng.random(n) < 0.5
        self._ticked = np.zeros(n, dtype=np.bool_)
        self._last_t = np.zeros(n, dtype=np.int64)

        self._block_ns = max(1, round(config.block_ms * 1e6))
        self._origin: int | None = None
        self._now: int | None = None
        self._blocks = 0  # blocks generated so far
        self._next_garch_ns = 0
        self._burst_mult = 1.0
        self._burst_from = 0
        self._burst_until = 0
        self._pending_burst_s = 0.0
        self._buffer = TickBatch.empty()

    # -- public API ---------------------------------------------------------------------

    @property
    def now_ns(self) -> int | None:
        """The last clock reading passed in (None before the first)."""
        return self._now

    def next_batch(self, now_ns: int) -> TickBatch:
        """All ticks with `ts_event` in (previous now, now_ns], sorted; empty on the first call."""
        if self._origin is None or self._now is None:
            self._start(now_ns)
            return TickBatch.empty()
        if now_ns <= self._now:
            return TickBatch.empty()
        self._now = now_ns
        blocks = [self._buffer]
        while self._generated_until() < now_ns:
            blocks.append(self._generate_block())
        self._buffer = TickBatch.concat(blocks) if len(blocks) > 1 else self._buffer
        cut = int(np.searchsorted(self._buffer.ts_event, now_ns, side="right"))
        out = self._buffer.take(np.arange(cut))
        self._buffer = self._buffer.take(np.arange(cut, len(self._buffer)))
        return out

    def generate(self, start_ns: int, end_ns: int) -> TickBatch:
        """Ticks in (start_ns, end_ns] for offline use (fresh generator or continuing)."""
        if self._now is None:
            self._start(start_ns)
        elif start_ns < self._now:
            raise ValueError("generate() cannot go back in time: start_ns is before the clock")
        elif start_ns > self._now:
            self.next_batch(start_ns)
        return self.next_batch(end_ns)

    def burst(self, multiplier: float, duration_s: float) -> None:
        """Multiply every instrument's rate by `multiplier` for `duration_s` from the next block."""
        if not multiplier > 0.0 or duration_s < 0.0:
            raise ValueError("burst needs multiplier > 0 and duration_s >= 0")
        start = self._generated_until() if self._origin is not None else 0
        self._burst_mult = multiplier
        self._burst_from = start
        self._burst_until = (
            start + round(duration_s * SECOND_NS) if self._origin is not None else -1
        )
        self._pending_burst_s = duration_s

    def set_regime(
        self,
        instruments: npt.ArrayLike,
        drift_per_s: npt.ArrayLike = 0.0,
        mean_reversion: npt.ArrayLike = 0.0,
    ) -> None:
        """Give instruments a log drift per second and/or a pull (per second) to today's price.

        Used to plant a trend or a mean-reverting market that a tuned strategy should find.
        """
        idx = np.asarray(instruments, dtype=np.int64)
        self._drift[idx] = drift_per_s
        self._reversion[idx] = np.maximum(0.0, np.asarray(mean_reversion, dtype=np.float64))
        self._anchor[idx] = self._log_mid[idx]

    def mid_prices(self) -> npt.NDArray[np.float64]:
        """Current mid price per instrument (of the last generated block)."""
        return np.exp(self._log_mid)

    # -- internals ------------------------------------------------------------------------

    def _start(self, now_ns: int) -> None:
        self._origin = now_ns
        self._now = now_ns
        self._last_t[:] = now_ns
        self._next_garch_ns = now_ns + SECOND_NS
        if self._burst_until == -1:  # burst() called before the clock started
            self._burst_from = now_ns
            self._burst_until = now_ns + round(self._pending_burst_s * SECOND_NS)

    def _generated_until(self) -> int:
        assert self._origin is not None
        return self._origin + self._blocks * self._block_ns

    def _rates(self, block_start: int) -> npt.NDArray[np.float64]:
        """Ticks per second for each instrument during the block that starts now."""
        cfg = self.config
        b_s = self._block_ns / 1e9
        phi = math.exp(-math.log(2.0) * b_s / cfg.activity_half_life_s)
        noise = self._rng.standard_normal(len(self.share))
        self._log_activity = (
            phi * self._log_activity + cfg.activity_sd * math.sqrt(1 - phi * phi) * noise
        )
        activity = np.exp(self._log_activity - cfg.activity_sd**2 / 2.0)
        vol_boost = (self._var / self._var_bar) ** cfg.activity_vol_elasticity
        weight = self.share * activity * vol_boost
        # Regimes move flow between names; each asset class keeps its share of `tick_rate`.
        rates = np.zeros_like(weight)
        for mask in (self._is_equity, ~self._is_equity):
            total = weight[mask].sum()
            if total > 0:
                rates[mask] = cfg.tick_rate * self._class_share(mask) * weight[mask] / total
        if self._burst_from <= block_start < self._burst_until:
            rates = rates * self._burst_mult
        if cfg.equity_hours == "real" and not _equity_session_open(block_start):
            rates = np.where(self._is_equity, 0.0, rates)
        return rates

    def _class_share(self, mask: npt.NDArray[np.bool_]) -> float:
        return float(self.share[mask].sum())

    def _generate_block(self) -> TickBatch:
        cfg = self.config
        rng = self._rng
        start = self._generated_until()
        self._blocks += 1
        B = self._block_ns
        rates = self._rates(start)
        clusters = rng.poisson(rates * (B / 1e9) / cfg.cluster_mean_size)
        c_inst = np.repeat(np.arange(len(rates), dtype=np.int64), clusters)
        n_c = c_inst.size
        c_u = rng.random(n_c)
        c_size = rng.geometric(1.0 / cfg.cluster_mean_size, n_c)
        c_trade = rng.random(n_c) < self._p_trade_cluster[c_inst]
        n = int(c_size.sum())
        inst = np.repeat(c_inst, c_size)
        first = np.zeros(n, dtype=np.bool_)
        heads = np.cumsum(c_size) - c_size
        first[heads] = True
        gaps = rng.exponential(cfg.cluster_gap_us * 1e3, n)
        gaps[first] = 0.0
        cum = np.cumsum(gaps)
        within = (cum - np.repeat(cum[heads], c_size)).astype(np.int64)
        # A cluster starts uniformly where it fits whole in its block, so every tick stays in
        # its block (dropping the overflow would bias the rate ~2 % low).
        span = np.maximum.reduceat(within, heads) if n_c else np.zeros(0, dtype=np.int64)
        c_start = 1 + (c_u * np.maximum(B - span, 1)).astype(np.int64)
        t_off = np.repeat(c_start, c_size) + within
        kind = np.where(np.repeat(c_trade, c_size), 0, rng.integers(1, 3, n)).astype(np.uint8)
        z = rng.standard_normal(n)
        p_jump = cfg.jumps_per_hour / 3600.0 / np.maximum(rates[inst], 1e-9)
        jump = np.where(rng.random(n) < p_jump, rng.standard_normal(n) * cfg.jump_bps * 1e-4, 0.0)
        flip = rng.random(n) >= cfg.trade_side_persistence
        sizes = np.exp(rng.standard_normal(n))
        keep = t_off <= B
        order = np.lexsort((t_off, inst))
        order = order[keep[order]]
        trade_size, quote_size = self._sizes(inst[order], sizes[order])
        m = order.size
        out_inst = np.empty(2 * m, np.uint32)
        out_t = np.empty(2 * m, np.int64)
        out_price = np.empty(2 * m, np.float64)
        out_size = np.empty(2 * m, np.float64)
        out_kind = np.empty(2 * m, np.uint8)
        count = _price_path(
            inst[order], t_off[order] + start, kind[order], z[order], jump[order], first[order],
            flip[order], trade_size, quote_size, self._log_mid, self._last_t, self._var,
            self._drift, self._reversion, self._anchor, self._tick, self._half_spread,
            self._bid_units, self._ask_units, self._sum_r, self._buying,
            out_inst, out_t, out_price, out_size, out_kind,
        )  # fmt: skip
        self._ticked[inst[order]] = True
        if start + B >= self._next_garch_ns:
            self._garch_update()
        by_time = np.argsort(out_t[:count], kind="stable")
        return TickBatch(
            instrument=out_inst[:count][by_time],
            ts_event=out_t[:count][by_time],
            ts_recv=out_t[:count][by_time].copy(),
            price=out_price[:count][by_time],
            size=out_size[:count][by_time],
            kind=out_kind[:count][by_time],
        )

    def _sizes(
        self, inst: npt.NDArray[np.int64], draw: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Trade and quote sizes: round lots of shares for stocks, lots worth dollars for crypto."""
        cfg = self.config
        equity = self._is_equity[inst]
        price = np.exp(self._log_mid[inst])
        lot = self._lot[inst]
        crypto_qty = np.maximum(lot, np.round(cfg.crypto_trade_usd * draw / price / lot) * lot)
        trade = np.where(
            equity, np.maximum(1.0, np.round(cfg.equity_trade_shares * draw)), crypto_qty
        )
        quote = np.where(equity, 100.0 * np.maximum(1.0, np.round(3.0 * draw)), 20.0 * crypto_qty)
        return trade, quote

    def _garch_update(self) -> None:
        """Once a second: sigma^2 <- omega + alpha r^2 + beta sigma^2 (r = the second's return)."""
        cfg = self.config
        omega = self._var_bar * (1.0 - cfg.garch_alpha - cfg.garch_beta)
        r2 = np.where(self._ticked, self._sum_r**2, self._var)
        self._var = omega + cfg.garch_alpha * r2 + cfg.garch_beta * self._var
        self._sum_r[:] = 0.0
        self._ticked[:] = False
        self._next_garch_ns += SECOND_NS


def _equity_session_open(t_ns: int) -> bool:
    """09:30-16:00 New York on a weekday (exchange holidays are not modelled)."""
    local = dt.datetime.fromtimestamp(t_ns / 1e9, tz=NEW_YORK)
    if local.weekday() >= 5:
        return False
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return _SESSION_OPEN_S <= seconds < _SESSION_CLOSE_S
