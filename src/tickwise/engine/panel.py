"""The live terminal panel: rates, per-stage latency, rejects and errors while a run goes on.

On a terminal it redraws in place (rich); elsewhere (CI, a pipe) it prints one line every few
seconds instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from tickwise.engine.summary import flow_totals, merged_timer
from tickwise.telemetry import LatencyHistogram

_STAGES = ("feed", "signal", "alloc", "journal", "sent", "venue", "ack")


class LivePanel:
    def __init__(
        self,
        console: Console | None = None,
        line_every_s: float = 5.0,
        interactive: bool | None = None,
    ) -> None:
        self.console = console or Console(stderr=True)
        tty = self.console.is_terminal and sys.stderr.isatty()
        self._interactive = tty if interactive is None else interactive and tty
        self._live: Live | None = None
        self._last: tuple[float, dict[str, int]] | None = None
        self._line_every_s = line_every_s
        self._last_line = 0.0
        self._last_ack = LatencyHistogram()

    def __enter__(self) -> LivePanel:
        if self._interactive:
            self._live = Live(console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, elapsed_s: float, snap: dict[str, Any]) -> None:
        totals = flow_totals(snap)
        rates = {k: 0.0 for k in totals}
        if self._last is not None:
            dt = max(1e-6, elapsed_s - self._last[0])
            rates = {k: (v - self._last[1].get(k, 0)) / dt for k, v in totals.items()}
        self._last = (elapsed_s, totals)
        timer = merged_timer([snap["feed"], *snap["shards"], *snap["allocators"], *snap["routers"]])
        tuning = (snap.get("tuner") or {}).get("tuning")
        if self._live is not None:
            self._live.update(_table(elapsed_s, totals, rates, timer, tuning))
        elif time.monotonic() - self._last_line >= self._line_every_s:
            self._last_line = time.monotonic()
            ack = timer.histograms.get("ack")
            recent = LatencyHistogram()
            if ack is not None:
                recent = ack.since(self._last_ack)
                self._last_ack = ack
            p99 = recent.percentile_ns(99) / 1e6
            self.console.print(
                f"[{elapsed_s:6.1f}s] ticks/s {rates['ticks']:>9,.0f}  "
                f"signals/s {rates['signals']:>6,.0f}  orders/s {rates['orders']:>8,.0f}  "
                f"ack p99 (last {self._line_every_s:g} s) {p99:7.1f} ms  "
                f"rejects {totals['rejects']:,}  errors {totals['errors']}"
                + (f"  {_tuning_line(tuning)}" if tuning else ""),
                highlight=False,
            )


def _tuning_line(t: dict[str, Any]) -> str:
    return (
        f"re-tunes {t['runs']:,} swaps {t['swaps']:,} instruments {t['instruments_tuned']:,}"
        f"/{t['instruments']:,} period p50 {t['median_period_s']:.0f} s"
    )


def _table(
    elapsed: float,
    totals: dict[str, int],
    rates: dict[str, float],
    timer: Any,
    tuning: dict[str, Any] | None = None,
) -> Table:
    table = Table(title=f"tickwise — live, {elapsed:,.0f} s", expand=False)
    table.add_column("flow")
    table.add_column("total", justify="right")
    table.add_column("per s", justify="right")
    for key in ("ticks", "signals", "orders", "fills", "rejects", "errors"):
        table.add_row(key, f"{totals[key]:,}", f"{rates[key]:,.0f}")
    table.add_section()
    table.add_row("[b]stage latency[/b]", "p50 ms", "p99 ms")
    for stage in _STAGES:
        hist = timer.histograms.get(stage)
        if hist is not None and hist.total:
            table.add_row(
                stage, f"{hist.percentile_ns(50) / 1e6:.2f}", f"{hist.percentile_ns(99) / 1e6:.2f}"
            )
    if tuning:
        table.add_section()
        table.add_row("[b]tuning[/b]", "total", "")
        table.add_row("re-tunes / swaps", f"{tuning['runs']:,} / {tuning['swaps']:,}", "")
        table.add_row(
            "instruments tuned", f"{tuning['instruments_tuned']:,} / {tuning['instruments']:,}", ""
        )
        table.add_row("period p50 / p99 s", f"{tuning['median_period_s']:.0f} / "
                      f"{tuning['p99_period_s']:.0f}", "")  # fmt: skip
    return table
