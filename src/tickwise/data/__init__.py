"""tickwise.data: the market-data path before the strategies.

A universe of instruments, a calibrated synthetic market, a replay of recorded ticks, the
validator every tick passes at the door, and the Parquet tick store with its recorder and
importers. Feeds share one API: `next_batch(now_ns) -> TickBatch`.
"""

from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.importer import ImportReport, TickImportError, import_paths
from tickwise.data.readers import ReplaySource, SymbolTicks, default_data_root, discover_sources
from tickwise.data.recorder import TickRecorder
from tickwise.data.replay import ReplayFeed, replay_registry
from tickwise.data.tickstore import TickStore, TickStoreError
from tickwise.data.universe import build_universe, universe_prices
from tickwise.data.validation import RejectCounts, TickRejectReason, TickValidator

__all__ = [
    "GeneratorConfig",
    "ImportReport",
    "MarketGenerator",
    "RejectCounts",
    "ReplayFeed",
    "ReplaySource",
    "SymbolTicks",
    "TickImportError",
    "TickRecorder",
    "TickRejectReason",
    "TickStore",
    "TickStoreError",
    "TickValidator",
    "build_universe",
    "default_data_root",
    "discover_sources",
    "import_paths",
    "replay_registry",
    "universe_prices",
]
