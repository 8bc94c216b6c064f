"""The push link: publishing a local stream to another server (edge publish proxy, forward), as
a sans-IO state machine. This module owns every decision; the driver (lib/server/edge/push.py)
performs the actions and feeds events and timers back.

States: idle -> connecting -> publishing; on failure backoff or connecting (next target);
stopped (stop(), or gave up); error (a call not in the table, with `error` saying which).

Rules:
- Targets are tried in order with OriginPicker (sticky, capped exponential backoff).
- `give_up` mode (edge publish): a round in which every target failed with no success since the
  last time the link was publishing -> GiveUp + Stop (the encoder is disconnected). Without it
  (forward) the link retries until stopped.
- link_up -> Accepted(origin, first): the driver re-sends metadata and sequence headers and
  restarts the queue at a keyframe before any media, so the far side can decode at once.
- MediaQueue keeps at most `queue_ms` of media not yet sent (by timestamps, only when there is a
  backlog): older media is shed up to the next keyframe; sequence headers and metadata are
  re-sent by the driver after every connect anyway.
"""
from collections import deque

from lib.cluster.actions import Accepted, Close, GiveUp, Stop
from lib.cluster.machine import BACKOFF, CONNECTING, ERROR, STOPPED, LinkMachine
from lib.cluster.origins import format_origin

IDLE, PUBLISHING = "idle", "publishing"

TABLE = {
    "start": (IDLE,),
    "link_up": (CONNECTING,),
    "link_failed": (CONNECTING, PUBLISHING),
    "timer": (IDLE, CONNECTING, PUBLISHING, BACKOFF, STOPPED, ERROR),
    "stop": (IDLE, CONNECTING, PUBLISHING, BACKOFF, STOPPED, ERROR),
}


class PushLink(LinkMachine):
    NAME = "push link"
    TABLE = TABLE

    def __init__(self, targets, give_up, now):
        super().__init__(targets, now, IDLE)
        self.give_up = give_up
        self.accepted_once = False
        self.connected_since = None

    def start(self, now):
        if self._allowed("start"):
            self._connect_next(now)

    def link_up(self, now):
        if not self._allowed("link_up"):
            return
        self.picker.succeeded(self.origin)
        self.failed_round.clear()
        self.connected_since = now
        self.actions.append(Accepted(self.origin, not self.accepted_once))
        self.accepted_once = True
        self._set(PUBLISHING, now)

    def link_failed(self, reason, now):
        if not self._allowed("link_failed"):
            return
        self.last_error = reason
        self.connected_since = None
        self.actions.append(Close(reason))
        self.picker.failed(self.origin, now)
        self.failed_round.add(self.origin)
        if self.give_up and self.failed_round >= set(self.picker.origins):
            why = f"every origin failed: {reason}"
            self.actions += [GiveUp(why), Stop(why)]
            self._set(STOPPED, now)
            return
        self._connect_next(now)

    def get_timer(self):
        return self.deadline if self.state == BACKOFF else None

    def handle_timer(self, now):
        if self._allowed("timer") and self.state == BACKOFF and now >= self.deadline:
            self._connect_next(now)

    def stop(self, now, reason="stopped"):
        if not self._allowed("stop") or self.done:
            return
        self.actions += [Close(reason), Stop(reason)]
        self.deadline = None
        self._set(STOPPED, now)

    def describe(self):
        return {"state": self.state, "target": format_origin(self.origin) if self.origin else None,
                "failovers": self.picker.failovers, "last_error": self.last_error}


class MediaQueue:
    """Media waiting to be pushed, bounded by `queue_ms` of timestamps (shed to a keyframe)."""

    SHED_AFTER = 64                   # messages queued before the time bound is checked

    def __init__(self, queue_ms):
        self.queue_ms = queue_ms
        self.items = deque()
        self.dropped = 0

    def __len__(self):
        return len(self.items)

    def push(self, msg):
        q = self.items
        q.append(msg)
        if len(q) > self.SHED_AFTER and msg.timestamp - q[0].timestamp > self.queue_ms:
            self._shed()

    def _shed(self):
        q = self.items
        newest = q[-1].timestamp
        while q and newest - q[0].timestamp > self.queue_ms:
            q.popleft()
            self.dropped += 1
        self.restart_at_keyframe()

    def restart_at_keyframe(self):
        """Drop leading video that is not a keyframe or a sequence header."""
        q = self.items
        while q and q[0].type_id == 9 and not q[0].is_keyframe and not q[0].is_sequence_header:
            q.popleft()
            self.dropped += 1

    def pop_batch(self, limit):
        q = self.items
        n = min(limit, len(q))
        return [q.popleft() for _ in range(n)]
