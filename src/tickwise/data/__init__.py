"""tickwise.data: the market-data path before the strategies.

A universe of instruments, a calibrated synthetic market, a replay of recorded ticks, and the
validator every tick passes at the door. Feeds share one API: `next_batch(now_ns) -> TickBatch`.
"""

from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.readers import ReplaySource, SymbolTicks, default_data_root, discover_sources
from tickwise.data.replay import ReplayFeed, replay_registry
from tickwise.data.universe import build_universe, universe_prices
from tickwise.data.validation import RejectCounts, TickRejectReason, TickValidator

__all__ = [
    "GeneratorConfig",
    "MarketGenerator",
    "RejectCounts",
    "ReplayFeed",
    "ReplaySource",
    "SymbolTicks",
    "TickRejectReason",
    "TickValidator",
    "build_universe",
    "default_data_root",
    "discover_sources",
    "replay_registry",
    "universe_prices",
]
