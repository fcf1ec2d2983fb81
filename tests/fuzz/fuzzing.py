"""What the fuzz tests share: their settings, junk values, and mutations of a valid message.

Two kinds of input reach every parser here:

- structure-aware: a valid message (built as the unit tests or the simulator build it) with
  one to three mutations anywhere in its tree (a key dropped, a value swapped for junk or for
  another type, a value wrapped in a list, an extra key), then on the wire possibly truncated,
  given a duplicate key, or with bytes that are not UTF-8;
- raw: arbitrary bytes and text, plus nesting deep enough to exhaust a recursive decoder.

Junk numbers include what JSON can carry but a float cannot (10**400), NaN and infinities
(Python's json writes and reads them), negatives, and digits `int()` reads but ASCII does not.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from tickwise.data.replay import replay_registry
from tickwise.model.instruments import InstrumentRegistry

PROFILE = "tickwise-fuzz"

# Text a careless decoder trips on: numbers in odd spellings, non-ASCII digits, control bytes,
# a lone surrogate, and a run of digits longer than int() converts.
ODD_TEXTS = (
    "",
    " ",
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    "1e400",
    "-1",
    "-0",
    "1e-400",
    "0x1A",
    "1_000",
    "²",
    "٣",
    "١٢",
    "\x00",
    "\ud800",
    "null",
    "[]",
    "9" * 5000,
)
BIG_NUMBERS = (2**63, -(2**63) - 1, 2**64, 10**30, 10**400, -(10**400), 1e308, 5e-324)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BIG_NUMBERS),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(ODD_TEXTS),
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
raw_bytes = st.binary(max_size=400)

# Nesting past the interpreter's recursion limit: json, XML trees and msgpack all recurse.
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


def budget(share: float = 1.0) -> settings:
    """The fuzz profile with `share` of its examples (a slow property runs fewer)."""
    base = settings.get_profile(PROFILE)
    return settings(base, max_examples=max(5, round(base.max_examples * share)))


def registry() -> InstrumentRegistry:
    """The fuzzed venues' universe: AAPL 0, BRK.B 1 (stocks), BTC/USD 2, ETH/USD 3 (pairs)."""
    return replay_registry(["AAPL", "BRK.B", "BTC/USD", "ETH/USD"])


# -- structure-aware mutations ------------------------------------------------------------------


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON tree, depth first."""
    out: list[tuple[Any, Any]] = []
    keys = (
        list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else ()
    )
    for key in keys:
        out.append((node, key))
        out.extend(_slots(node[key]))
    return out


def _retyped(value: Any) -> list[Any]:
    """The same value in other JSON types (text <-> number, scaled, negated, boxed)."""
    options: list[Any] = [None, [value], {"value": value}, str(value)]
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = float(len(value))
        options += [number, -number, value.upper(), value[: len(value) // 2]]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        options += [-value, value * 10**300, math.nan, math.inf, str(-value)]
        if abs(value) < 1e300:  # a float product or quotient of a larger int overflows
            options += [value * 1e300, value / 1e300]
    return options


@st.composite
def mutated(draw: st.DrawFn, doc: Any, steps: int = 3) -> Any:
    """`doc` with one to `steps` mutations anywhere in its tree."""
    out = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, steps))):
        slots = _slots(out)
        if not slots:
            return draw(json_values)
        parent, key = slots[draw(st.integers(0, len(slots) - 1))]
        how = draw(st.sampled_from(("drop", "junk", "retype", "wrap", "extra")))
        if how == "drop":
            del parent[key]
        elif how == "junk":
            parent[key] = draw(json_values)
        elif how == "retype":
            parent[key] = draw(st.sampled_from(_retyped(parent[key])))
        elif how == "wrap":
            parent[key] = [parent[key]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return out


def documents(doc: Any) -> st.SearchStrategy[Any]:
    """Decoded messages: `doc` mutated, or any JSON value at all."""
    return st.one_of(mutated(doc), json_values)


@st.composite
def wire_json(draw: st.DrawFn, doc: Any) -> bytes:
    """`doc` mutated and written as JSON, then maybe damaged on the wire."""
    tree = draw(mutated(doc))
    text = json.dumps(tree).encode()
    how = draw(st.sampled_from(("whole", "truncated", "duplicate_key", "not_utf8", "junk_tail")))
    if how == "truncated":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if how == "duplicate_key" and isinstance(tree, dict) and isinstance(doc, dict) and doc:
        key = draw(st.sampled_from(sorted(doc)))
        value = json.dumps(draw(json_values)).encode()
        return (
            text[:-1] + (b", " if tree else b"") + json.dumps(key).encode() + b": " + value + b"}"
        )
    if how == "not_utf8":
        cut = draw(st.integers(0, len(text)))
        return text[:cut] + draw(st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80"))) + text[cut:]
    if how == "junk_tail":
        return text + draw(raw_bytes)
    return text


def wire_or_raw(doc: Any) -> st.SearchStrategy[bytes]:
    """Bytes on the wire: `doc` mutated and damaged, or raw bytes."""
    return st.one_of(wire_json(doc), raw_bytes)


# -- invariants ------------------------------------------------------------------------------


def assert_amounts(**amounts: float) -> None:
    """Quantities, prices and fees a parser hands on are finite and not negative."""
    for name, value in amounts.items():
        assert isinstance(value, float), f"{name} is {type(value).__name__}, not float"
        assert math.isfinite(value) and value >= 0.0, f"{name} = {value!r}"
