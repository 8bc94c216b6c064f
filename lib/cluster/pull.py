"""The edge pull link (SRS `cluster { mode remote; }`): one per edge stream, as a sans-IO state
machine. This module owns every decision of the link's life; the driver
(lib/server/edge/ingest.py) only performs the actions and feeds events and timers back.

States (`state`):
  idle       made, no player yet
  connecting a Connect(origin) was asked; waiting for link_up / link_failed
  waiting    the link is up and playing; no media from it yet
  streaming  media flows
  backoff    every usable origin is backing off; the timer says when to try again
  stopped    over for good (grace period ended, not found, shutdown, origins removed)
  error      a call not in the table: the link is dead and says why (`error`)
Orthogonal: `players` (count) and `linger_until` (the grace period once the last player left;
a player arriving meanwhile cancels it and keeps the running link: no refusal window).

Rules:
- The first player starts the link. Origins are chosen by OriginPicker (sticky, backoff).
- A link fails on: connect error/timeout, close, protocol error, an error/unpublish status, or no
  media for `data_timeout` seconds (waiting or streaming). Failure -> Close, then the next origin
  at once, or `backoff` until the soonest one may be tried.
- Not found: if no origin ever gave media and every origin failed once, players wait
  (`wait_for` seconds from the first player, SRS's edge does the same): the origins are asked
  again every NOT_FOUND_RETRY seconds (SRS_EDGE_INGESTER_CIMS); once `wait_for` is over with
  still no media -> NotFound + Stop. `wait_for` 0: NotFound after the first failed round.
- After every (re)connect video restarts at a keyframe (`media()` says what to deliver); the
  first media after a switch emits Resumed(origin, gap) so the source continues its timeline.
- Reload (`reconfigure`): an empty origin list stops the link (NotFound: the players are told);
  a removed current origin moves the link to the new list at once (no backoff penalty).
- Every method takes `now` (seconds, monotonic); `get_timer()` is the next deadline or None and
  `handle_timer(now)` acts on it. Actions accumulate in `actions`; the driver takes them with
  `take_actions()`.
"""
from lib.cluster.actions import Close, NotFound, Resumed, Stop
from lib.cluster.machine import BACKOFF, CONNECTING, ERROR, STOPPED, LinkMachine
from lib.cluster.origins import format_origin

IDLE, WAITING, STREAMING = "idle", "waiting", "streaming"
NOT_FOUND_RETRY = 3.0             # s between rounds while players wait (SRS: 3 s)
LIVE = (CONNECTING, WAITING, STREAMING, BACKOFF)
LINKED = (CONNECTING, WAITING, STREAMING)

# (state, event) pairs a caller may use; anything else is an error (the `error` state).
TABLE = {
    "player": (IDLE,) + LIVE,
    "leave": LIVE,
    "link_up": (CONNECTING,),
    "link_failed": LINKED,
    "media": (WAITING, STREAMING),
    "timer": (IDLE,) + LIVE + (STOPPED, ERROR),
    "reconfigure": (IDLE,) + LIVE + (STOPPED, ERROR),
    "shutdown": (IDLE,) + LIVE + (STOPPED, ERROR),
}


class EdgePull(LinkMachine):
    NAME = "edge link"
    TABLE = TABLE

    def __init__(self, origins, data_timeout, grace, now, wait_for=0.0):
        super().__init__(origins, now, IDLE)
        self.wait_for = wait_for
        self.wait_until = None          # players wait for a publisher until then
        self.data_timeout = data_timeout
        self.grace = grace
        self.players = 0
        self.linger_until = None
        self.got_media = False          # any origin ever gave media
        self.last_media = None          # `now` of the last media message
        self.waiting_key = True         # video restarts at a keyframe after each connect
        self.last_gap = None
        self.links_opened = 0

    @property
    def lingering(self):
        return self.linger_until is not None

    # ------------------------------------------------------------ players
    def player_added(self, now):
        if not self._allowed("player"):
            return
        self.players += 1
        self.linger_until = None
        if self.state == IDLE:
            self.wait_until = now + self.wait_for
            self._connect_next(now)

    def player_removed(self, now):
        if self.done:
            return                       # the link already ended; nothing to decide
        if not self._allowed("leave"):
            return
        self.players = max(0, self.players - 1)
        if self.players == 0:
            self.linger_until = now + self.grace

    # ------------------------------------------------------------ link events
    def link_up(self, now):
        if not self._allowed("link_up"):
            return
        self.links_opened += 1
        self.waiting_key = True
        self.deadline = now + self.data_timeout
        self._set(WAITING, now)

    def link_failed(self, reason, now):
        if not self._allowed("link_failed"):
            return
        self.last_error = reason
        self.actions.append(Close(reason))
        origin = self.origin
        self.picker.failed(origin, now)
        self.failed_round.add(origin)
        if not self.got_media and self.failed_round >= set(self.picker.origins):
            if now >= self.wait_until:
                self._stop(now, f"stream not found on any origin ({reason})", not_found=True)
                return
            self.failed_round.clear()   # players wait: ask every origin again in a while
            self.deadline = min(now + NOT_FOUND_RETRY, self.wait_until)
            self._set(BACKOFF, now)
            return
        self._connect_next(now)

    @property
    def passes_all_media(self):
        """True while `media` delivers every message whatever its facts, changing nothing but
        the time of the last media (streaming, no keyframe awaited): a caller may then pass a
        read's media on unchecked and report the read once, with `media_seen`."""
        return self.state == STREAMING and not self.waiting_key

    def media_seen(self, now):
        """Media was passed on at `now` while `passes_all_media` (what `media` records)."""
        if self.passes_all_media:
            self.last_media = now
            self.deadline = now + self.data_timeout

    def media(self, now, is_video, is_keyframe, is_sequence_header):
        """A message from the link: True to deliver it to the source, False to drop it."""
        if not self._allowed("media"):
            return False
        if is_video and self.waiting_key and not is_sequence_header:
            if not is_keyframe:
                return False             # resume video at a keyframe
            self.waiting_key = False
        if self.state == WAITING:
            if self.got_media:
                gap = now - self.last_media
                self.last_gap = gap
                self.actions.append(Resumed(self.origin, gap))
            self.got_media = True
            self.failed_round.clear()
            self.picker.succeeded(self.origin)
            self._set(STREAMING, now)
        self.last_media = now
        self.deadline = now + self.data_timeout
        return True

    # ------------------------------------------------------------ time
    def get_timer(self):
        times = [t for t in (self.deadline if self.state in (WAITING, STREAMING, BACKOFF) else None,
                             self.linger_until if not self.done else None) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now):
        if not self._allowed("timer") or self.done:
            return
        if self.linger_until is not None and now >= self.linger_until and self.players == 0:
            self._stop(now, f"no player for {self.grace:g}s")
            return
        if self.deadline is None or now < self.deadline:
            return
        if self.state == BACKOFF:
            if not self.got_media and self.wait_until is not None and now >= self.wait_until \
                    and self.wait_for > 0:
                self._stop(now, f"stream not found on any origin in {self.wait_for:g}s "
                                f"({self.last_error})", not_found=True)
                return
            self._connect_next(now)
        elif self.state in (WAITING, STREAMING):
            self.link_failed(f"{format_origin(self.origin)}: no media for {self.data_timeout:g}s", now)

    # ------------------------------------------------------------ config, shutdown
    def reconfigure(self, origins, data_timeout, grace, now, why="reload removed origin"):
        if not self._allowed("reconfigure") or self.done:
            return
        self.data_timeout, self.grace = data_timeout, grace
        if not origins:
            self._stop(now, "reload removed the edge vhost's origins", not_found=True)
            return
        self.picker.update(origins)
        self.failed_round &= set(origins)
        if self.state in LINKED and self.origin not in origins:
            self.actions.append(Close(f"{why} {format_origin(self.origin)}"))
            self._connect_next(now)
        elif self.state == BACKOFF:
            self._connect_next(now)

    def shutdown(self, now, reason="shutdown"):
        if not self._allowed("shutdown") or self.done:
            return
        self._stop(now, reason)

    # ------------------------------------------------------------ internals
    def _stop(self, now, reason, not_found=False):
        self.actions.append(Close(reason))
        if not_found:
            self.actions.append(NotFound(reason))
        self.actions.append(Stop(reason))
        self.deadline = self.linger_until = None
        self._set(STOPPED, now)

    def describe(self):
        """What the API shows (`edge` of a stream)."""
        state = "stopping" if self.lingering and not self.done else self.state
        return {"state": state, "origin": format_origin(self.origin) if self.origin else None,
                "failovers": self.picker.failovers, "last_error": self.last_error,
                "players": self.players, "links_opened": self.links_opened,
                "last_gap_ms": None if self.last_gap is None else round(self.last_gap * 1000)}
