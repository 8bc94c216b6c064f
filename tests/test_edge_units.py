"""The edge pull link and the push link as sans-IO machines, driven with a fake clock.

No sockets, no sleeps: each test plays a story (players come and go, links come up and fail,
media arrives, time passes, a reload changes the origins) and checks the actions the machine
asks for and the state it reports. Expectations are written out, never read from the table.
"""
from lib.cluster.actions import Accepted, Close, Connect, GiveUp, NotFound, Resumed, Stop
from lib.cluster.origins import BACKOFF_CAP, BACKOFF_FIRST, OriginPicker
from lib.cluster.pull import EdgePull
from lib.cluster.push import MediaQueue, PushLink

A, B, C = ("a", 1935), ("b", 1935), ("c", 1935)
TIMEOUT, GRACE = 5.0, 3.0


def kinds(actions):
    return [type(a).__name__ for a in actions]


def pull(origins=(A, B), now=0.0):
    m = EdgePull(list(origins), TIMEOUT, GRACE, now)
    m.player_added(now)
    return m


def streaming(m, now):
    """The link to the machine's current origin comes up and media flows."""
    assert kinds(m.take_actions()) == ["Connect"]
    m.link_up(now)
    assert m.media(now, True, True, False)
    return m


# ------------------------------------------------------------------ start, media, keyframes
def test_first_player_connects_to_the_first_origin_and_media_makes_it_streaming():
    m = EdgePull([A, B], TIMEOUT, GRACE, 0.0)
    assert m.state == "idle" and m.take_actions() == []
    m.player_added(1.0)
    assert m.take_actions() == [Connect(A)] and m.state == "connecting"
    m.link_up(1.2)
    assert m.state == "waiting"
    assert m.media(1.3, False, False, False)          # audio before any video: delivered
    assert m.state == "streaming" and m.take_actions() == []     # no Resumed the first time


def test_video_restarts_at_a_keyframe_after_each_connect():
    m = pull()
    m.take_actions()
    m.link_up(0.0)
    assert m.media(0.1, True, False, True)            # sequence header passes
    assert not m.media(0.1, True, False, False)       # inter frame before a keyframe: dropped
    assert m.media(0.2, True, True, False)
    assert m.media(0.3, True, False, False)           # then everything


def test_a_read_passes_media_unchecked_only_while_streaming_past_a_keyframe():
    m = pull()
    m.take_actions()
    assert not m.passes_all_media                     # connecting
    m.link_up(0.0)
    assert not m.passes_all_media                     # waiting: the first media decides
    m.media(0.1, False, False, False)                 # audio: streaming, video still waits
    assert m.state == "streaming" and not m.passes_all_media
    m.media(0.2, True, True, False)
    assert m.passes_all_media
    m.media_seen(3.0)                                 # a read passed on at 3.0: as media()
    assert m.last_media == 3.0 and m.get_timer() == 3.0 + TIMEOUT
    m.link_failed("a closed", 4.0)
    assert not m.passes_all_media
    m.media_seen(4.5)                                 # not streaming: records nothing
    assert m.last_media == 3.0


# ------------------------------------------------------------------ failover
def test_failover_to_the_next_origin_and_resumed_with_the_gap():
    m = streaming(pull(), 0.0)
    m.media(10.0, False, False, False)
    m.link_failed("a closed", 10.5)
    assert m.take_actions() == [Close("a closed"), Connect(B)]
    m.link_up(10.6)
    assert not m.media(10.7, True, False, False)      # B starts mid-GOP: wait for its keyframe
    assert m.media(10.9, True, True, False)
    acts = m.take_actions()
    assert len(acts) == 1 and acts[0].origin == B and abs(acts[0].gap - 0.9) < 1e-9
    assert m.describe()["failovers"] == 1 and m.describe()["origin"] == "b:1935"


def test_no_media_for_data_timeout_fails_over():
    m = streaming(pull(), 0.0)
    assert m.get_timer() == TIMEOUT
    m.handle_timer(4.9)
    assert m.take_actions() == []
    m.handle_timer(5.0)
    actions = m.take_actions()
    assert kinds(actions) == ["Close", "Connect"] and actions[1] == Connect(B)
    assert "no media for 5s" in m.last_error


def test_waiting_for_first_media_also_times_out():
    m = pull()
    m.take_actions()
    m.link_up(0.0)
    m.handle_timer(TIMEOUT)
    assert kinds(m.take_actions()) == ["Close", "Connect"]


def test_flapping_origin_backs_off_and_sticks_to_the_working_one():
    m = streaming(pull(), 0.0)
    m.link_failed("a down", 1.0)
    m.take_actions()                                  # -> B
    m.link_up(1.1)
    m.media(1.2, True, True, False)
    assert m.take_actions() == [Resumed(B, 1.2)]
    m.link_failed("b down", 2.0)                      # A's backoff (0.5 s) is over: back to A
    assert m.take_actions() == [Close("b down"), Connect(A)]
    m.link_failed("a refused", 2.1)                   # A fails again at once
    acts = m.take_actions()
    # both origins are backing off now (A 1 s, B 0.5 s): wait for the soonest, no tight loop
    assert acts == [Close("a refused")] and m.state == "backoff"
    assert m.get_timer() == 2.5                       # B's retry time
    m.handle_timer(2.4)
    assert m.take_actions() == []
    m.handle_timer(2.5)
    assert m.take_actions() == [Connect(B)]


def test_both_origins_down_after_media_keeps_trying_with_capped_backoff():
    m = streaming(pull(), 0.0)
    now, waits = 1.0, []
    m.link_failed("a down", now)
    for _ in range(12):
        if m.state == "connecting":
            m.link_failed("down", now)
        acts = m.take_actions()
        if m.state == "backoff":
            waits.append(m.get_timer() - now)
            now = m.get_timer()
            m.handle_timer(now)
            m.take_actions()
        assert not any(isinstance(a, (NotFound, Stop)) for a in acts)   # players stay
    assert max(waits) <= BACKOFF_CAP and m.state in ("connecting", "backoff")


# ------------------------------------------------------------------ not found
def test_not_found_when_no_origin_ever_gave_media():
    m = pull()
    m.take_actions()
    m.link_failed("a: StreamNotFound", 0.1)
    assert m.take_actions() == [Close("a: StreamNotFound"), Connect(B)]
    m.link_failed("b: connect failed", 0.2)
    acts = m.take_actions()
    assert kinds(acts) == ["Close", "Close", "NotFound", "Stop"]
    assert m.state == "stopped" and m.done


def test_not_found_is_not_declared_once_media_flowed():
    m = streaming(pull(), 0.0)
    m.link_failed("a", 1.0)
    m.take_actions()
    m.link_failed("b", 1.1)
    assert "NotFound" not in kinds(m.take_actions())


# ------------------------------------------------------------------ grace period
def test_last_player_leaving_stops_after_the_grace_period():
    m = streaming(pull(), 0.0)
    m.player_removed(1.0)
    assert m.describe()["state"] == "stopping" and m.get_timer() == 1.0 + GRACE
    m.handle_timer(3.9)
    assert m.take_actions() == []
    m.media(3.95, False, False, False)                # media keeps flowing while lingering
    m.handle_timer(4.0)
    assert kinds(m.take_actions()) == ["Close", "Stop"] and m.state == "stopped"


def test_player_returning_in_the_grace_period_keeps_the_link():
    """SRS #2215/#2911: a player arriving while the link lingers is never refused."""
    m = streaming(pull(), 0.0)
    m.player_removed(1.0)
    m.player_added(2.0)
    m.media(3.9, False, False, False)
    m.handle_timer(4.5)                               # the old grace deadline (4.0) is gone
    assert "Stop" not in kinds(m.take_actions()) and m.state != "stopped"
    assert m.describe()["state"] == "streaming" and m.players == 1


# ------------------------------------------------------------------ reload
def test_reload_removing_the_current_origin_moves_the_link_without_backoff():
    m = streaming(pull(), 0.0)
    m.reconfigure([B, C], TIMEOUT, GRACE, 1.0)
    assert m.take_actions() == [Close("reload removed origin a:1935"), Connect(B)]


def test_reload_keeping_the_origin_changes_nothing_but_timeouts():
    m = streaming(pull(), 0.0)
    m.reconfigure([C, A], 2.0, GRACE, 1.0)
    assert m.take_actions() == [] and m.origin == A
    m.media(1.0, False, False, False)
    m.handle_timer(3.0)                               # the new 2 s data timeout applies
    assert kinds(m.take_actions()) == ["Close", "Connect"]


def test_reload_removing_every_origin_stops_and_tells_the_players():
    """The old ingester died on min([]) and stayed `connected` for new players."""
    m = streaming(pull(), 0.0)
    m.reconfigure([], TIMEOUT, GRACE, 1.0)
    assert kinds(m.take_actions()) == ["Close", "NotFound", "Stop"] and m.done


# ------------------------------------------------------------------ the table's error state
def test_a_call_not_in_the_table_is_an_explicit_error_state():
    m = EdgePull([A], TIMEOUT, GRACE, 0.0)
    m.link_up(0.0)                                    # no link was asked for
    assert m.state == "error" and "link_up not allowed in state idle" in m.error
    assert kinds(m.take_actions()) == ["Close", "Stop"]
    m.player_added(1.0)                               # stays dead, never looks healthy
    assert m.state == "error" and m.done


def test_shutdown_from_any_state():
    for setup in (lambda m: None, lambda m: m.take_actions(), lambda m: streaming(m, 0.0)):
        m = pull()
        setup(m)
        m.take_actions()
        m.shutdown(1.0)
        assert kinds(m.take_actions()) == ["Close", "Stop"] and m.state == "stopped"


# ------------------------------------------------------------------ origin picker
def test_picker_backoff_doubles_caps_and_resets():
    p = OriginPicker([A])
    waits, now = [], 0.0
    for _ in range(8):
        p.failed(A, now)
        waits.append(p.choose(now)[1])
    assert waits[:3] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST]
    assert max(waits) == BACKOFF_CAP
    p.succeeded(A)
    assert p.choose(now) == (A, 0.0)


# ------------------------------------------------------------------ push link
def test_push_accepts_on_the_first_target_that_works():
    m = PushLink([A, B], give_up=True, now=0.0)
    m.start(0.0)
    assert m.take_actions() == [Connect(A)]
    m.link_failed("a refused", 0.1)
    assert m.take_actions() == [Close("a refused"), Connect(B)]
    m.link_up(0.2)
    assert m.take_actions() == [Accepted(B, True)] and m.state == "publishing"


def test_push_give_up_mode_gives_up_after_a_full_failed_round():
    m = PushLink([A, B], give_up=True, now=0.0)
    m.start(0.0)
    m.take_actions()
    m.link_up(0.1)
    m.take_actions()
    m.link_failed("a lost", 5.0)                      # reconnect to B, re-send headers
    assert m.take_actions() == [Close("a lost"), Connect(B)]
    m.link_up(5.1)
    assert m.take_actions() == [Accepted(B, False)]
    m.link_failed("b lost", 6.0)
    m.take_actions()                                  # A again (its backoff is over)
    m.link_failed("a refused", 6.1)
    acts = m.take_actions()
    assert kinds(acts) == ["Close", "GiveUp", "Stop"] and m.done
    assert isinstance(acts[1], GiveUp) and "every origin failed" in acts[1].reason


def test_forward_mode_retries_forever_with_backoff():
    m = PushLink([A], give_up=False, now=0.0)
    m.start(0.0)
    now = 0.0
    for _ in range(6):
        acts = m.take_actions()
        if m.state == "connecting":
            m.link_failed("down", now)
        elif m.state == "backoff":
            now = m.get_timer()
            m.handle_timer(now)
        assert "GiveUp" not in kinds(acts)
    assert not m.done


def test_push_stop_closes_gracefully():
    m = PushLink([A], give_up=False, now=0.0)
    m.start(0.0)
    m.take_actions()
    m.link_up(0.1)
    m.take_actions()
    m.stop(1.0)
    assert kinds(m.take_actions()) == ["Close", "Stop"] and m.state == "stopped"


class Msg:
    def __init__(self, ts, video=True, key=False, sh=False):
        self.timestamp, self.type_id, self.is_keyframe, self.is_sequence_header = (
            ts, 9 if video else 8, key, sh)


def test_media_queue_sheds_old_media_to_a_keyframe():
    q = MediaQueue(queue_ms=1000)
    for i in range(200):                              # 8 s of 25 fps video, keyframe every 50
        q.push(Msg(i * 40, key=i % 50 == 0))
    first = q.items[0]
    assert first.is_keyframe and 199 * 40 - first.timestamp <= 2000
    assert q.dropped > 0 and len(q) + q.dropped == 200
