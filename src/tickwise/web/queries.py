"""The query facade: every question the dashboard, the API and the CLI ask of tickwise.

Each method answers one question as JSON-ready data (the shapes are the API's, documented in
`web.openapi`): the run's status and throughput over time, instruments with their parameters,
signals and fills, clients with positions, orders and PnL, the venues' health, the cluster, the
re-tuning audit trail and the kill switch. Answers come from the store (orders, fills,
re-tunes, halts), the tick store (prices) and, during a run, the engine's live state; without a
run (`live=None`) the store alone answers.

A `Queries` uses one store connection: call it from one thread (the web server runs every
query on a single worker thread).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tickwise import __version__
from tickwise.engine.halts import halt as set_halt
from tickwise.engine.halts import resume as clear_halt
from tickwise.engine.summary import flow_totals
from tickwise.model.clients import ClientBook
from tickwise.model.instruments import (
    VENUE_RULES,
    AssetClass,
    Instrument,
    InstrumentRegistry,
    Venue,
)
from tickwise.model.orders import OrderState, Side
from tickwise.store import FillRecord, Halt, OrderRecord, Store, canonical_halt_scope
from tickwise.telemetry import merge_counters
from tickwise.tuning.records import CurrentParams, Retune
from tickwise.web.live import LiveState, actor_parts, rejects_by_reason

MAX_LIMIT = 500
PRICE_POINTS = 2000
PRICE_WINDOW_S = 30 * 60
OPEN_STATES = (OrderState.JOURNALED, OrderState.SENT, OrderState.ACKED, OrderState.UNKNOWN)


class NotFoundError(LookupError):
    """The thing asked for does not exist (HTTP 404)."""


class QueryError(ValueError):
    """A question that cannot be answered as asked (HTTP 400)."""


class Queries:
    """Answers about one store and, during a run, the live engine (module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        store_url: str = "",
        live: LiveState | None = None,
        strategies: Mapping[AssetClass, str] | None = None,
        ticks_dir: Path | None = None,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self._store_kind = store_url.split(":", 1)[0]
        self.live = live
        self._strategies = dict(strategies or {})
        self._ticks_dir = ticks_dir
        self._clock = clock

    # Reference data, read on first use (the kill-switch commands never need it).

    @cached_property
    def registry(self) -> InstrumentRegistry:
        return self.store.load_instruments()

    @cached_property
    def book(self) -> ClientBook:
        return self.store.load_client_book()

    @cached_property
    def _portfolios_of(self) -> dict[int, list[int]]:
        return _portfolios_by_client(self.book)

    @cached_property
    def _id_text(self) -> Any:
        return self.book.client_id.astype(str)

    # -- the run ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        live = self.live
        info = live.info if live is not None else None
        halts = self.store.active_halts()
        return {
            "run_id": info.run_id if info else "",
            "tier": info.tier if info else "",
            "state": live.state if live is not None else "finished",
            "elapsed_s": round(live.elapsed_s(), 3) if live is not None else 0.0,
            "duration_s": info.duration_s if info else 0.0,
            "instruments": len(self.registry),
            "clients": len(self.book),
            "version": __version__,
            "store": self._store_kind,
            "halted": bool(halts),
            "halts": [_halt(h, True) for h in halts],
        }

    def throughput(self, since: float | None = None) -> dict[str, Any]:
        """Rates and per-stage latency over time, totals so far and rejects by reason."""
        if since is None:
            since = self._clock() - 600.0
        empty = dict.fromkeys(
            ("ticks", "signals", "journaled", "orders", "fills", "rejects", "errors"), 0
        )
        if self.live is None or (snap := self.live.snapshot()) is None:
            return {"points": [], "totals": empty, "rejects_by_reason": {}}
        points = [
            {
                "t": round(p.t, 3),
                **{k: round(v, 3) for k, v in p.rates.items()},
                "latency_ms": {s: dict(v) for s, v in p.latency_ms.items()},
            }
            for p in self.live.points(since)
        ]
        return {
            "points": points,
            "totals": flow_totals(snap),
            "rejects_by_reason": rejects_by_reason(snap),
        }

    # -- instruments --------------------------------------------------------------------------

    def instruments(self, q: str = "", limit: int = 100, offset: int = 0) -> dict[str, Any]:
        needle = q.strip().upper()
        chosen = (
            [i for i in self.registry if needle in i.symbol.upper()]
            if needle
            else list(self.registry)
        )
        chosen.sort(key=lambda i: (not i.symbol.upper().startswith(needle), i.symbol))
        current = self.store.current_params()
        page = chosen[offset : offset + _limit(limit)]
        now_ns = int(self._clock() * 1e9)  # one "now" for the whole page
        rows = [self._instrument_row(inst, current.get(inst.symbol), now_ns) for inst in page]
        return {"total": len(chosen), "instruments": rows}

    def _instrument_row(
        self, inst: Instrument, params: CurrentParams | None, now_ns: int
    ) -> dict[str, Any]:
        """An instrument and what is live for it according to the audit trail."""
        return {
            "symbol": inst.symbol,
            "index": inst.index,
            "venue": self._venues_of(inst.asset_class),
            "asset_class": inst.asset_class.name.lower(),
            "strategy": params.strategy if params else self._strategy(inst.asset_class),
            "params": _finite_map(params.params) if params else {},
            "params_age_s": _age(params.swapped_at_ns, now_ns) if params else None,
            "last_score": _finite(params.last_score) if params else None,
        }

    def instrument(self, symbol: str) -> dict[str, Any]:
        inst = self._instrument(symbol)
        current = self.store.current_params().get(inst.symbol)
        orders = self.store.recent_orders(instrument=inst.index, limit=MAX_LIMIT)
        fills = self.store.recent_fills(instrument=inst.index, limit=MAX_LIMIT)
        retunes = self.store.retune_history(inst.symbol, limit=50)
        return {
            **self._instrument_row(inst, current, int(self._clock() * 1e9)),
            "prices": self._prices(inst.symbol),
            "signals": _signals(orders),
            "fills": [_fill_point(f) for f in reversed(fills)],
            "retunes": [_retune(r) for r in retunes],
        }

    def _prices(self, symbol: str) -> list[list[float]]:
        """The symbol's recorded trades over the last half hour, thinned to at most
        `PRICE_POINTS` (the recorder writes to the tick store every `[ticks] flush_s`)."""
        if self._ticks_dir is None or not self._ticks_dir.exists():
            return []
        from tickwise.data.tickstore import TickStore

        end = int(self._clock() * 1e9)
        ticks = TickStore(self._ticks_dir).read_symbol(symbol, end - PRICE_WINDOW_S * 10**9, end)
        if len(ticks) == 0:
            return []
        step = max(1, math.ceil(len(ticks) / PRICE_POINTS))
        ts, px = ticks.ts_event[::step], ticks.price[::step]
        return [[round(t / 1e9, 3), float(p)] for t, p in zip(ts, px, strict=True)]

    # -- clients ------------------------------------------------------------------------------

    def clients(
        self, q: str = "", venue: str = "", limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """Clients whose id is `q` (first) or starts with its digits, optionally at one venue."""
        digits = "".join(ch for ch in q if ch.isdigit())
        rows = np.arange(len(self.book))
        if venue:
            rows = rows[self.book.venue[rows] == _venue(venue).value]
        if digits:
            text = self._id_text[rows]
            exact = rows[text == digits]
            prefix = rows[np.char.startswith(text, digits) & (text != digits)]
            rows = np.concatenate([exact, prefix])
        page = rows[offset : offset + _limit(limit)]
        return {"total": int(rows.size), "clients": [self._client_row(int(r)) for r in page]}

    def _client_row(self, row: int) -> dict[str, Any]:
        cid = int(self.book.client_id[row])
        return {
            "id": cid,
            "venue": Venue(int(self.book.venue[row])).label,
            "equity": float(self.book.equity[row]),
            "portfolios": self._portfolios_of.get(cid, []),
        }

    def client(self, client_id: int) -> dict[str, Any]:
        row = int(np.searchsorted(self.book.client_id, client_id))
        if row >= len(self.book) or int(self.book.client_id[row]) != client_id:
            raise NotFoundError(f"no client {client_id}")
        orders = self.store.recent_orders(client=client_id, limit=100)
        fills = self.store.recent_fills(client=client_id, limit=MAX_LIMIT)
        account = self.live.account(client_id) if self.live is not None else None
        base = self._client_row(row)
        start_equity = base["equity"]
        if account is not None:
            cash, realised, unrealised, fees = (
                account.cash_usd,
                account.realised_usd,
                account.unrealised_usd,
                account.fees_u / 1e6,
            )
            holdings = account.positions
            cost = account.avg_cost
        else:  # no run: what the recorded fills say
            holdings, cost, cash, fees = _positions_from(fills, start_equity)
            realised, unrealised = 0.0, 0.0
        marks = _last_prices(fills)
        positions: list[dict[str, Any]] = []
        for inst, qty in sorted(holdings.items()):
            if qty == 0:
                continue
            last = marks.get(inst, cost.get(inst, 0.0))
            positions.append(
                {
                    "symbol": self._symbol(inst),
                    "qty": qty,
                    "avg_cost": round(cost.get(inst, 0.0), 6),
                    "last_price": last,
                    "value": round(qty * last, 2),
                }
            )
        equity = cash + sum(float(p["value"]) for p in positions)
        halts = {h.scope for h in self.store.active_halts()}
        scopes = {"global", f"client:{client_id}"} | {f"portfolio:{p}" for p in base["portfolios"]}
        return {
            **base,
            "halted": bool(halts & scopes),
            "cash": round(cash, 2),
            "equity": round(equity, 2),
            "realised_pnl": round(realised, 2),
            "unrealised_pnl": round(unrealised, 2),
            "fees": round(fees, 4),
            "positions": positions,
            "open_orders": [self._order(o) for o in orders if o.state in OPEN_STATES],
            "orders": [self._order(o) for o in orders],
            "fills": [self._fill(f) for f in fills[:100]],
            "equity_curve": _equity_curve(fills, start_equity),
        }

    # -- venues, cluster ----------------------------------------------------------------------

    def venues(self) -> dict[str, Any]:
        if self.live is None or self.live.info is None or (snap := self.live.snapshot()) is None:
            return {"venues": []}
        info = self.live.info
        rates = self.live.venue_rates()
        by_venue: dict[str, list[Mapping[str, Any]]] = {}
        for venue, router in zip(info.router_venues, snap["routers"], strict=False):
            by_venue.setdefault(venue, []).append(router)
        out = []
        for venue, routers in by_venue.items():
            counters = merge_counters(r["counters"] for r in routers)
            adapter = merge_counters(
                {k: int(v) for k, v in r.get("venue", {}).items() if isinstance(v, int | float)}
                for r in routers
            )
            errors = {k: int(v) for k, v in adapter.items() if _is_error(k) and v}
            if counters.get("venue_errors"):
                errors["venue_errors"] = int(counters["venue_errors"])
            sent = int(counters.get("orders_sent", 0))
            requests = int(adapter.get("requests", 0)) or sent
            rate = rates.get(venue)
            cap = info.venue_rate_caps.get(venue, 0.0)
            out.append(
                {
                    "venue": venue,
                    "lanes": len(routers),
                    "sent": sent,
                    "acked": int(counters.get("orders_acked", 0)),
                    "rejected": int(counters.get("orders_rejected", 0)),
                    "in_flight": int(sum(int(r.get("pending", 0)) for r in routers)),
                    "requests_per_s": round(
                        (rate.requests_per_s or rate.orders_per_s) if rate else 0.0, 2
                    ),
                    "rate_limit_per_s": cap or None,
                    "errors": errors,
                    "error_rate": round(sum(errors.values()) / requests, 6) if requests else 0.0,
                    "stream": _stream_status(adapter),
                    "reconnects": int(
                        adapter.get("stream_reconnects", adapter.get("stream_disconnects", 0))
                    ),
                }
            )
        return {"venues": out}

    def cluster(self) -> dict[str, Any]:
        ray_view = dict(self.live.cluster()) if self.live is not None else {}
        snap = self.live.snapshot() if self.live is not None else None
        actors = []
        if snap is not None:
            for kind, parts in actor_parts(snap).items():
                actors.append(
                    {
                        "kind": kind,
                        "count": len(parts),
                        "alive": len(parts),  # each answered this snapshot
                        "restarts": sum(bool(p.get("restarted")) for p in parts),
                    }
                )
        return {
            "nodes": list(ray_view.get("nodes", [])),
            "resources": dict(ray_view.get("resources", {})),
            "actors": actors,
        }

    # -- tuning and the kill switch -----------------------------------------------------------

    def tuning(self, instrument: str = "", limit: int = 50) -> dict[str, Any]:
        symbol = self._instrument(instrument).symbol if instrument else None
        snap = self.live.snapshot() if self.live is not None else None
        tuner = snap.get("tuner") if snap is not None else None
        summary: dict[str, Any] = {"enabled": tuner is not None}
        figures = dict(tuner["tuning"]) if tuner is not None else {}
        for key in ("runs", "swaps", "instruments_tuned"):
            summary[key] = int(figures.get(key, 0))
        for key in ("median_period_s", "p99_period_s", "sets_evaluated_per_s"):
            summary[key] = _finite(figures.get(key))
        limit = _limit(limit)
        history = self.store.retune_history(symbol, limit=limit) if limit else []
        return {
            "summary": summary,
            "retunes": [{**_retune(r), "symbol": r.symbol} for r in history],
        }

    def halts(self, history: int = 50) -> dict[str, Any]:
        active = self.store.active_halts()
        return {
            "generation": self.store.halt_generation(),
            "active": [_halt(h, True) for h in active],
            "history": [_halt(h, None) for h in self.store.halt_history(_limit(history))],
        }

    def halt(self, scope: str, reason: str, cancel_open: bool, actor: str) -> dict[str, Any]:
        """Stop new orders in `scope` (the kill switch); the allocators see it within a batch.
        The answer carries the halt's generation."""
        try:
            scope = canonical_halt_scope(scope)
            generation = set_halt(self.store, scope, reason, cancel_open=cancel_open, actor=actor)
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        mine = [h for h in self.store.active_halts() if h.scope == scope]
        return {"halt": _halt(mine[-1], True), "generation": generation}

    def resume(self, scope: str, reason: str, actor: str) -> dict[str, Any]:
        """Let orders flow again in `scope`; `resumed` counts the halts it lifted (0: the scope
        was not halted, and the resume is recorded all the same)."""
        try:
            scope = canonical_halt_scope(scope)
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        was = sum(h.scope == scope for h in self.store.active_halts())
        generation = clear_halt(self.store, scope, reason=reason, actor=actor)
        return {"resumed": was, "generation": generation}

    # -- helpers ------------------------------------------------------------------------------

    def _instrument(self, symbol: str) -> Instrument:
        try:
            return self.registry.by_symbol(symbol)
        except KeyError:
            for inst in self.registry:
                if inst.symbol.upper() == symbol.upper():
                    return inst
            raise NotFoundError(f"no instrument {symbol!r}") from None

    def _symbol(self, index: int) -> str:
        return self.registry[index].symbol if 0 <= index < len(self.registry) else str(index)

    def _strategy(self, asset_class: AssetClass) -> str:
        return self._strategies.get(asset_class, "")

    def _venues_of(self, asset_class: AssetClass) -> str:
        return ", ".join(v.label for v, rules in VENUE_RULES.items() if rules.trades(asset_class))

    def _order(self, o: OrderRecord) -> dict[str, Any]:
        return {
            "client_order_id": o.client_order_id,
            "symbol": self._symbol(o.instrument),
            "side": _side(o.side),
            "qty": o.qty,
            "price": o.price,
            "state": o.state.name.lower(),
            "filled_qty": o.filled_qty,
            "avg_fill_price": round(o.avg_fill_price, 6),
            "t": round(o.ts_journal / 1e9, 3),
        }

    def _fill(self, f: FillRecord) -> dict[str, Any]:
        return {
            "t": round(f.ts_ack / 1e9, 3),
            "symbol": self._symbol(f.instrument),
            "side": _side(f.side),
            "qty": f.qty,
            "price": f.price,
            "fee": f.fee,
        }


def _limit(limit: int) -> int:
    return max(0, min(int(limit), MAX_LIMIT))


def _venue(text: str) -> Venue:
    try:
        return Venue.parse(text)
    except ValueError as exc:
        raise QueryError(str(exc)) from exc


def _side(side: Side | int) -> str:
    return "buy" if int(side) > 0 else "sell"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _finite_map(values: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if math.isfinite(float(v))}


def _age(ts_ns: int | None, now_ns: int) -> float | None:
    return None if ts_ns is None else round(max(0, now_ns - ts_ns) / 1e9, 3)


def _halt(h: Halt, active: bool | None) -> dict[str, Any]:
    return {
        "scope": h.scope,
        "reason": h.reason,
        "actor": h.actor,
        "t": round(h.ts_ns / 1e9, 3),
        "active": h.action == "halt" if active is None else active,
        "action": h.action,
        "cancel_open": bool(h.cancel_open),
    }


def _retune(r: Retune) -> dict[str, Any]:
    params = r.winner if r.decision == "swap" else r.live
    return {
        "t": round(r.ts_ns / 1e9, 3),
        "window_start": round(r.train_from_ns / 1e9, 3),
        "window_end": round(r.valid_to_ns / 1e9, 3),
        "live_score": _finite(r.live_score),
        "winner_score": _finite(r.winner_score),
        "decision": r.decision,
        "params": _finite_map(params),
    }


def _signals(orders: Sequence[OrderRecord]) -> list[dict[str, Any]]:
    """One marker per signal among the instrument's recent orders, oldest first."""
    seen: dict[int, dict[str, Any]] = {}
    for o in orders:
        mark = seen.get(o.signal_id)
        if mark is None:
            seen[o.signal_id] = {
                "t": round(o.ts_journal / 1e9, 3),
                "price": o.price,
                "side": _side(o.side),
                "orders": 1,
            }
        else:
            mark["orders"] += 1
            mark["t"] = min(mark["t"], round(o.ts_journal / 1e9, 3))
    return sorted(seen.values(), key=lambda m: m["t"])


def _fill_point(f: FillRecord) -> dict[str, Any]:
    return {"t": round(f.ts_ack / 1e9, 3), "price": f.price, "qty": f.qty, "side": _side(f.side)}


def _last_prices(fills: Sequence[FillRecord]) -> dict[int, float]:
    """The latest fill price per instrument (fills come newest first)."""
    out: dict[int, float] = {}
    for f in fills:
        out.setdefault(f.instrument, f.price)
    return out


def _positions_from(
    fills: Sequence[FillRecord], start_cash: float
) -> tuple[dict[int, float], dict[int, float], float, float]:
    """Holdings, average cost, cash and fees from fills alone (newest first), for a client
    asked about when no run is live."""
    qty: dict[int, float] = {}
    cost: dict[int, float] = {}
    cash, fees = start_cash, 0.0
    for f in reversed(fills):
        signed = f.qty * int(f.side)
        held = qty.get(f.instrument, 0.0)
        if signed > 0:
            cost[f.instrument] = (
                (cost.get(f.instrument, 0.0) * held + f.price * signed) / (held + signed)
                if held + signed
                else 0.0
            )
        qty[f.instrument] = held + signed
        cash -= signed * f.price + f.fee
        fees += f.fee
    return qty, cost, cash, fees


def _equity_curve(fills: Sequence[FillRecord], start_equity: float) -> list[list[float]]:
    """The client's equity after each recent fill: cash plus holdings marked at the latest
    fill price of each instrument so far (the client's own fills are its marks)."""
    cash = start_equity
    qty: dict[int, float] = {}
    mark: dict[int, float] = {}
    curve: list[list[float]] = []
    for f in reversed(fills):
        signed = f.qty * int(f.side)
        qty[f.instrument] = qty.get(f.instrument, 0.0) + signed
        mark[f.instrument] = f.price
        cash -= signed * f.price + f.fee
        value = cash + sum(q * mark[i] for i, q in qty.items())
        curve.append([round(f.ts_ack / 1e9, 3), round(value, 2)])
    return curve


def _portfolios_by_client(book: ClientBook) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    order = np.argsort(book.sub_client, kind="stable")
    for client, portfolio in zip(book.sub_client[order], book.sub_portfolio[order], strict=True):
        out.setdefault(int(client), []).append(int(portfolio))
    return out


def _is_error(name: str) -> bool:
    return any(word in name for word in ("error", "rate_limited", "timeout", "disconnect", "5xx"))


def _stream_status(adapter: Mapping[str, int]) -> str:
    if not any(k.startswith("stream") for k in adapter):
        return "none"
    up = adapter.get("stream_connects", 0) or adapter.get("streams_open", 0)
    down = adapter.get("stream_disconnects", 0)
    return "connected" if up > down else "reconnecting"
