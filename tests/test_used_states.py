"""Each worker's memory of spent states: single use, as long as a flow lives, bounded."""

from __future__ import annotations

from bridge.sessions import FLOW_TTL, UsedStates
from tests.clock import FakeClock


def test_a_state_is_spent_once() -> None:
    used = UsedStates()
    assert used.spend("s1")
    assert not used.spend("s1")
    assert used.spend("s2")


def test_a_state_is_remembered_as_long_as_its_flow_lives() -> None:
    clock = FakeClock()
    used = UsedStates(clock=clock)
    assert used.spend("early")
    clock.advance(FLOW_TTL - 1)
    assert used.spend("late")
    clock.advance(FLOW_TTL - 1)  # a new generation began: both are still remembered
    assert not used.spend("early")
    assert not used.spend("late")


def test_states_older_than_two_flow_lifetimes_are_forgotten() -> None:
    clock = FakeClock()
    used = UsedStates(clock=clock)
    used.spend("old")
    clock.advance(FLOW_TTL)
    used.spend("next")
    clock.advance(FLOW_TTL)
    used.spend("newest")
    assert len(used) == 2
    assert used.spend("old")  # its flow expired long ago; pop_flow refuses it anyway


def test_memory_is_bounded_and_the_latest_states_are_remembered() -> None:
    used = UsedStates(limit=100)
    for i in range(1000):
        assert used.spend(f"state-{i}")
    assert len(used) <= 200
    assert not any(used.spend(f"state-{i}") for i in range(900, 1000))
