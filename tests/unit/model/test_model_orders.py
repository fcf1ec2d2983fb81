"""The order state machine: legal paths, illegal transitions, and batch/scalar agreement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwise.model.orders import (
    TERMINAL_STATES,
    TRANSITIONS,
    IllegalTransitionError,
    OrderEvent,
    OrderState,
    advance,
    transition,
)

events = st.sampled_from(list(OrderEvent))


def test_happy_path_reaches_filled() -> None:
    state = OrderState.CREATED
    for event in (OrderEvent.JOURNAL, OrderEvent.SEND, OrderEvent.ACK, OrderEvent.FILL):
        state = transition(state, event)
    assert state is OrderState.FILLED


def test_an_order_cannot_be_sent_before_it_is_journaled() -> None:
    with pytest.raises(IllegalTransitionError, match="CREATED cannot take event SEND"):
        transition(OrderState.CREATED, OrderEvent.SEND)


def test_lost_send_is_resolved_by_reconciliation() -> None:
    state = transition(OrderState.SENT, OrderEvent.LOSE)
    assert state is OrderState.UNKNOWN
    assert transition(state, OrderEvent.FILL) is OrderState.FILLED
    assert transition(state, OrderEvent.NOT_FOUND) is OrderState.REJECTED


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_terminal_states_accept_no_event(terminal: OrderState) -> None:
    for event in OrderEvent:
        with pytest.raises(IllegalTransitionError):
            transition(terminal, event)


@given(st.lists(events, max_size=30))
def test_any_event_sequence_stays_inside_the_table(seq: list[OrderEvent]) -> None:
    state = OrderState.CREATED
    visited = [state]
    for event in seq:
        if (state, event) in TRANSITIONS:
            state = transition(state, event)
            visited.append(state)
        else:
            with pytest.raises(IllegalTransitionError):
                transition(state, event)
    # Once terminal, an order never leaves its terminal state.
    first_terminal = next((i for i, s in enumerate(visited) if s in TERMINAL_STATES), None)
    if first_terminal is not None:
        assert visited[first_terminal:] == [visited[first_terminal]]
    # Nothing reaches SENT without having been JOURNALED first.
    if OrderState.SENT in visited:
        assert visited.index(OrderState.JOURNALED) < visited.index(OrderState.SENT)


@given(st.lists(st.sampled_from(list(OrderState)), min_size=1, max_size=50), events)
def test_batch_advance_agrees_with_scalar_transition(
    states: list[OrderState], event: OrderEvent
) -> None:
    arr = np.array(states, dtype=np.int8)
    legal = [(s, event) in TRANSITIONS for s in states]
    if all(legal):
        out = advance(arr, event)
        assert [OrderState(int(x)) for x in out] == [transition(s, event) for s in states]
    else:
        with pytest.raises(IllegalTransitionError):
            advance(arr, event)
