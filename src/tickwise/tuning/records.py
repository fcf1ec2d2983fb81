"""The re-tuning audit trail: one `Retune` record per decision, and what is live per instrument.

Every walk-forward re-tune of an instrument ends in a decision, recorded in the store whatever it
was: "swap" (the winner replaced the live parameters), "keep" (the live parameters stay, e.g. the
winner did not beat them by the margin) or "failed" (no decision could be made: too few ticks, an
error). `CurrentParams` is the store's summary of that trail for one instrument.

This module depends on nothing else in tickwise, so the store can import it freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DECISIONS: tuple[str, ...] = ("swap", "keep", "failed")
_INT_FIELDS = (
    "instrument", "ts_ns", "train_from_ns", "train_to_ns", "valid_from_ns", "valid_to_ns",
    "winner_trades", "sets_evaluated",
)  # fmt: skip


def _floats(values: Sequence[float], what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"retune: {what} must be numbers, got {values!r}") from None


@dataclass(frozen=True, slots=True)
class Retune:
    """One re-tuning decision for one instrument.

    Scores are the tuner's objective (higher is better); `live_score` and `winner_score` are
    measured on the validation window, `winner_train_score` on the training window. A score may
    be NaN or infinite (nothing traded, a failed run): the store keeps it as missing and reads it
    back as NaN. `live_params` and `winner_params` follow `param_names`; either may be empty when
    unknown (a failed re-tune has no winner), except that a swap always carries its winner.
    """

    run_id: str
    instrument: int
    symbol: str
    strategy: str
    ts_ns: int
    train_from_ns: int
    train_to_ns: int
    valid_from_ns: int
    valid_to_ns: int
    param_names: tuple[str, ...]
    live_params: tuple[float, ...]
    winner_params: tuple[float, ...]
    live_score: float
    winner_score: float
    winner_train_score: float
    winner_trades: int
    sets_evaluated: int
    decision: str
    reason: str

    def __post_init__(self) -> None:
        # Accept lists and numpy scalars from callers; keep plain tuples so records compare equal.
        names = tuple(str(n) for n in self.param_names)
        object.__setattr__(self, "param_names", names)
        object.__setattr__(self, "live_params", _floats(self.live_params, "live_params"))
        object.__setattr__(self, "winner_params", _floats(self.winner_params, "winner_params"))
        for name in ("live_score", "winner_score", "winner_train_score"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in _INT_FIELDS:
            object.__setattr__(self, name, int(getattr(self, name)))
        where = f"retune of {self.symbol!r} at {self.ts_ns}"
        if not self.symbol:
            raise ValueError(f"retune at {self.ts_ns}: empty symbol")
        if self.decision not in DECISIONS:
            raise ValueError(
                f"{where}: decision {self.decision!r} is not one of {', '.join(DECISIONS)}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: repeated parameter names {names}")
        for what, values in (("live_params", self.live_params), ("winner", self.winner_params)):
            if values and len(values) != len(names):
                raise ValueError(
                    f"{where}: {len(values)} {what} values for {len(names)} parameter names"
                )
        if self.decision == "swap" and len(self.winner_params) != len(names):
            raise ValueError(f"{where}: a swap must carry the winner's parameters")
        if self.train_from_ns > self.train_to_ns or self.valid_from_ns > self.valid_to_ns:
            raise ValueError(f"{where}: a window ends before it starts")

    @property
    def live(self) -> dict[str, float]:
        """The live parameters by name (empty when unknown)."""
        return dict(zip(self.param_names, self.live_params, strict=False))

    @property
    def winner(self) -> dict[str, float]:
        """The winning parameters by name (empty when there was no winner)."""
        return dict(zip(self.param_names, self.winner_params, strict=False))


@dataclass(frozen=True, slots=True)
class CurrentParams:
    """What is live for one instrument according to the audit trail.

    `values` come from the latest swap (`swapped_at_ns` is its time); an instrument never swapped
    shows the live parameters of its latest re-tune and `swapped_at_ns` None. `last_score` is the
    validation score of what is live after the latest re-tune: the winner's if it was a swap,
    else the live parameters'. `retunes` counts every decision, kept and failed ones included.
    """

    symbol: str
    instrument: int
    strategy: str
    param_names: tuple[str, ...]
    values: tuple[float, ...]
    swapped_at_ns: int | None
    last_retune_ns: int
    last_decision: str
    last_score: float
    retunes: int

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.param_names, self.values, strict=False))
