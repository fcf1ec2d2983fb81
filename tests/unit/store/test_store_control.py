"""Trading halts (the kill switch) and checkpoints, on every back end; halt scopes."""

from __future__ import annotations

import pickle
import threading

import pytest

from tickwise.store import Store, canonical_halt_scope, parse_halt_scope

# --- scopes -----------------------------------------------------------------------------------


def test_scopes_parse_to_a_kind_and_an_id() -> None:
    assert parse_halt_scope("global") == ("global", None)
    assert parse_halt_scope("portfolio:3") == ("portfolio", 3)
    assert parse_halt_scope("client:0") == ("client", 0)
    assert parse_halt_scope("client:2147483647") == ("client", 2**31 - 1)
    assert canonical_halt_scope("client:007") == "client:7"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Global",
        " global",
        "all",
        "client",
        "client:",
        "client:-1",
        "client:+1",
        "client:1.5",
        "client: 1",
        "client:1:2",
        "client:2147483648",
        "client:١",  # a digit, but not an ASCII one
        "account:1",
        "portfolio:x",
    ],
)
def test_anything_else_is_refused_with_the_forms_that_are_allowed(text: str) -> None:
    with pytest.raises(ValueError, match="expected 'global', 'portfolio:<id>' or 'client:<id>'"):
        parse_halt_scope(text)


# --- halts ------------------------------------------------------------------------------------


def test_a_new_store_has_no_halts(store: Store) -> None:
    assert store.active_halts() == []
    assert store.halt_generation() == 0
    assert store.halt_history() == []


def test_halts_set_and_clear_per_scope(store: Store) -> None:
    g1 = store.set_halt("global", "venue outage", cancel_open=True, actor="ops:ann")
    g2 = store.set_halt("client:07", "margin call")
    g3 = store.set_halt("portfolio:2", "bad data")
    assert g1 < g2 < g3 == store.halt_generation()
    active = store.active_halts()
    assert [h.scope for h in active] == ["client:7", "global", "portfolio:2"]  # by scope
    glob = active[1]
    assert (glob.reason, glob.cancel_open, glob.actor, glob.seq) == (
        "venue outage",
        True,
        "ops:ann",
        g1,
    )
    assert glob.action == "halt" and glob.ts_ns > 0
    assert active[0].actor == "cli" and not active[0].cancel_open

    g4 = store.clear_halt("client:7", actor="ops:bob", reason="margin met")
    assert g4 > g3 and store.halt_generation() == g4
    assert [h.scope for h in store.active_halts()] == ["global", "portfolio:2"]

    g5 = store.set_halt("client:7", "again")  # halted again after the resume
    assert g5 > g4
    assert "client:7" in [h.scope for h in store.active_halts()]


def test_halting_a_halted_scope_records_the_new_reason(store: Store) -> None:
    first = store.set_halt("portfolio:1", "first")
    second = store.set_halt("portfolio:1", "second", cancel_open=True)
    assert second > first
    (halt,) = store.active_halts()
    assert (halt.reason, halt.cancel_open, halt.seq) == ("second", True, second)


def test_clearing_a_scope_that_is_not_halted_is_still_recorded(store: Store) -> None:
    generation = store.clear_halt("client:3", actor="ops:ann")
    assert generation == store.halt_generation() == 1
    assert store.active_halts() == []
    (event,) = store.halt_history()
    assert (event.scope, event.action, event.actor, event.reason) == (
        "client:3",
        "resume",
        "ops:ann",
        "",
    )


def test_the_history_is_newest_first_with_a_limit(store: Store) -> None:
    store.set_halt("global", "a")
    store.clear_halt("global", reason="b")
    store.set_halt("client:1", "c")
    history = store.halt_history()
    assert [(h.scope, h.action, h.reason) for h in history] == [
        ("client:1", "halt", "c"),
        ("global", "resume", "b"),
        ("global", "halt", "a"),
    ]
    assert [h.seq for h in history] == sorted((h.seq for h in history), reverse=True)
    assert [h.reason for h in store.halt_history(limit=2)] == ["c", "b"]
    with pytest.raises(ValueError, match="limit"):
        store.halt_history(limit=0)


def test_a_bad_scope_records_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="halt scope 'client:x'"):
        store.set_halt("client:x", "typo")
    with pytest.raises(ValueError, match="halt scope 'everything'"):
        store.clear_halt("everything")
    assert store.halt_generation() == 0 and store.halt_history() == []


def test_concurrent_halts_get_distinct_consecutive_generations(store: Store) -> None:
    generations: list[int] = []
    lock = threading.Lock()

    def halt(worker: int) -> None:
        for i in range(5):
            g = store.set_halt(f"client:{worker}", f"#{i}")
            with lock:
                generations.append(g)

    threads = [threading.Thread(target=halt, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(generations) == list(range(1, 21))
    assert [h.reason for h in store.active_halts()] == ["#4"] * 4


def test_a_second_store_on_the_same_database_sees_the_halts(store: Store) -> None:
    other = pickle.loads(pickle.dumps(store))
    before = other.halt_generation()
    store.set_halt("global", "stop")
    assert other.halt_generation() > before
    assert [h.scope for h in other.active_halts()] == ["global"]
    other.close()


# --- checkpoints ------------------------------------------------------------------------------


def test_a_checkpoint_round_trips_and_a_missing_one_is_none(store: Store) -> None:
    payload = bytes(range(256)) * 4096  # a megabyte, every byte value, NULs included
    store.save_checkpoint("shard/7", payload)
    loaded = store.load_checkpoint("shard/7")
    assert loaded is not None
    data, ts_ns = loaded
    assert data == payload and isinstance(data, bytes) and ts_ns > 0
    assert store.load_checkpoint("shard/8") is None
    store.save_checkpoint("empty", b"")
    empty = store.load_checkpoint("empty")
    assert empty is not None and empty[0] == b""


def test_saving_again_replaces_the_checkpoint(store: Store) -> None:
    store.save_checkpoint("tuner", b"old")
    (_, first_ns) = store.load_checkpoint("tuner") or (b"", 0)
    store.save_checkpoint("tuner", bytearray(b"new"))
    data, ts_ns = store.load_checkpoint("tuner") or (b"", 0)
    assert data == b"new" and ts_ns >= first_ns
    assert store.checkpoint_names() == ["tuner"]


def test_checkpoint_names_by_prefix_sorted(store: Store) -> None:
    for name in ("shard/10", "shard/2", "tuner/SPY", "shard_x", "Shard/1", "shard%"):
        store.save_checkpoint(name, b"x")
    assert store.checkpoint_names() == sorted(
        ["Shard/1", "shard%", "shard/10", "shard/2", "shard_x", "tuner/SPY"]
    )
    assert store.checkpoint_names("shard/") == ["shard/10", "shard/2"]
    assert store.checkpoint_names("shard_") == ["shard_x"]  # '_' and '%' are not wildcards
    assert store.checkpoint_names("shard%") == ["shard%"]
    assert store.checkpoint_names("nothing") == []


def test_a_checkpoint_needs_a_name(store: Store) -> None:
    with pytest.raises(ValueError, match="name"):
        store.save_checkpoint("", b"x")
