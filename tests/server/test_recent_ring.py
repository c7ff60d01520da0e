"""The recent-events ring (engine.server.recent): positions in recording order, the oldest
dropped once it is full, and the index of positions brought up to date only when asked."""

from __future__ import annotations

from engine.server.recent import RecentEvents
from engine.store.records import EventRecord


def event(execution_id: str, seq: int) -> EventRecord:
    return EventRecord(execution_id, seq, "step.completed", {"output": {"n": seq}}, 0.0)


def test_positions_follow_recording_order_and_leave_with_the_oldest_events() -> None:
    ring = RecentEvents(size=10)
    for seq in range(1, 26):
        ring.publish(event("a" if seq % 2 else "b", seq))
        if seq == 5:
            assert ring.position(("a", 5)) == 4  # asked while filling: indexed so far
    assert ring.first == 15
    assert ring.position(("a", 5)) is None  # dropped
    assert ring.position(("b", 16)) == 15 and ring.position(("a", 25)) == 24
    assert ring.between(20) == [(21, ("b", 22)), (22, ("a", 23)), (23, ("b", 24)),
                                (24, ("a", 25))]
    assert ring.between(20, 23) == [(21, ("b", 22)), (22, ("a", 23))]


def test_a_position_asked_after_many_evictions_is_still_right() -> None:
    ring = RecentEvents(size=4)
    ring.publish(event("x", 1))
    assert ring.position(("x", 1)) == 0
    for seq in range(2, 1000):  # far more than the ring holds, never asked in between
        ring.publish(event("x", seq))
        if seq % 7 == 0:
            assert ring.position(("x", seq)) == seq - 1
    assert ring.position(("x", 1)) is None and ring.position(("x", 995)) is None
    assert [ring.position(("x", seq)) for seq in range(996, 1000)] == [995, 996, 997, 998]
    assert len(ring._positions) <= 3 * ring.size  # stale positions do not pile up


def test_between_refuses_what_has_left_the_ring() -> None:
    ring = RecentEvents(size=3)
    for seq in range(1, 8):
        ring.publish(event("y", seq))
    try:
        ring.between(1)
    except LookupError:
        pass
    else:
        raise AssertionError("events 3-4 left the ring: between(1) must refuse")
    assert ring.between(3) == [(4, ("y", 5)), (5, ("y", 6)), (6, ("y", 7))]
