"""Edge state table and origin selection (no network)."""
import pytest

from lib.server.edge.state import TRANSITIONS, EdgeState, EdgeStateError
from lib.server.edge.upstream import BACKOFF_CAP, BACKOFF_FIRST, Upstreams


@pytest.mark.parametrize("state, trigger", sorted(TRANSITIONS))
def test_every_transition(state, trigger):
    s = EdgeState()
    s.state = state
    assert s.fire(trigger, now=5.0) == TRANSITIONS[(state, trigger)]
    assert s.history[-1] == (state, trigger, TRANSITIONS[(state, trigger)])


def test_transitions_not_in_table_are_errors():
    s = EdgeState()
    with pytest.raises(EdgeStateError):
        s.fire("media")
    s.fire("publish")
    with pytest.raises(EdgeStateError):
        s.fire("play")                     # a pull never starts on a published edge stream


def test_player_in_grace_period_reattaches():
    """SRS #2215/#2911: a player arriving while the link is stopping is never refused."""
    s = EdgeState()
    for trigger in ("play", "media", "idle"):
        s.fire(trigger)
    assert s.state == "stopping" and s.can("play")
    s.fire("play")
    assert s.state != "init"


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_upstreams_sticky_and_backoff():
    clock = Clock()
    u = Upstreams([("a", 1), ("b", 2)], clock=clock)
    assert u.choose() == (("a", 1), 0.0)
    u.failed(("a", 1))
    assert u.choose() == (("b", 2), 0.0)
    clock.t += 60                          # a's backoff is long over: still sticky on b
    assert u.choose() == (("b", 2), 0.0)
    assert u.failovers == 1
    u.failed(("b", 2))
    assert u.choose() == (("a", 1), 0.0)


def test_upstreams_backoff_doubles_and_caps_and_resets():
    clock = Clock()
    u = Upstreams([("a", 1)], clock=clock)
    waits = []
    for _ in range(8):
        u.failed(("a", 1))
        waits.append(u.choose()[1])
    assert waits[0] == BACKOFF_FIRST and waits[1] == 2 * BACKOFF_FIRST
    assert max(waits) == BACKOFF_CAP
    u.succeeded(("a", 1))
    assert u.choose()[1] == 0.0


def test_upstreams_update_keeps_current():
    u = Upstreams([("a", 1), ("b", 2)])
    u.failed(("a", 1))
    u.update([("c", 3), ("b", 2)])
    assert u.current == ("b", 2)
    u.update([("d", 4)])
    assert u.current == ("d", 4)
