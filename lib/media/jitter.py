"""Timestamp correction for a live source (SRS's time_jitter), sans-IO.

Rules: `full` makes timestamps monotonic per source across publishers: a step bigger than
MAX_JITTER_MS either way is replaced by DEFAULT_FRAME_MS, so a republish or an upstream switch
continues right after the last timestamp players saw. `zero` starts the first publisher at 0
and passes its steps through as they are (no jitter correction); a later publisher (a
republish, an upstream switch) continues right after the largest timestamp so far, as in
`full`, so the source's timeline never goes back and no player's timestamps reset (issue 20
point 11; each player starts near 0 through its own base, lib/rtmp/timebase.py). `off` passes
timestamps through. `max_out` is the largest timestamp out in every mode (data messages sit
there on the timeline). The corrector is kept for the source's lifetime.
A re-anchor (jump or new publisher) continues after the *largest* timestamp sent so far, so
neither the audio nor the video track ever goes backwards across it.
Wrap: RTMP timestamps are 32-bit. A publisher's steps are taken modulo 2^32 (`wire_delta`), so
one that wraps (after 49.7 days, or starting near the top) goes on with its real steps; the
timeline out is unbounded (the encoders keep its low 32 bits).
"""

MAX_JITTER_MS = 250
DEFAULT_FRAME_MS = 10
_MASK32 = 0xFFFFFFFF
_HALF = 0x80000000


def wire_delta(ts, last):
    """`ts - last` for 32-bit timestamps that may have wrapped between them (-2^31..2^31-1)."""
    return ((ts - last + _HALF) & _MASK32) - _HALF


class Jitter:
    __slots__ = ("mode", "last_in", "last_out", "max_out", "started", "offset", "position")

    def __init__(self, mode="full"):
        self.mode = mode
        self.last_in = None            # the publisher's previous wire timestamp (None: new one)
        self.last_out = 0
        self.max_out = 0
        self.started = False
        self.offset = 0                # zero: where the current publisher's 0 sits
        self.position = 0              # zero/off: the publisher's unwrapped timestamp

    def restart(self):
        """A new publisher (or upstream) begins: its first timestamp is re-anchored."""
        self.last_in = None

    def correct(self, ts):
        if self.mode != "full":
            return self._zero_or_off(ts)
        last_in = self.last_in
        self.last_in = ts
        if last_in is not None:
            delta = ts - last_in
            if delta > MAX_JITTER_MS or delta < -MAX_JITTER_MS:
                delta = wire_delta(ts, last_in)        # maybe a small step across the wrap
            if -MAX_JITTER_MS <= delta <= MAX_JITTER_MS:
                out = self.last_out + delta
                if out < 0:
                    out = 0
                self.last_out = out
                if out > self.max_out:
                    self.max_out = out
                return out
        if not self.started:
            self.started = True
            self.last_out = 0
            return 0
        out = self.max_out + DEFAULT_FRAME_MS          # a jump, or a new publisher
        self.last_out = self.max_out = out
        return out

    def _zero_or_off(self, ts):
        last_in = self.last_in
        self.last_in = ts
        if last_in is None:
            if self.mode == "zero":
                self.offset = self.max_out + DEFAULT_FRAME_MS if self.started else 0
                self.position = 0
            else:
                self.position = ts
        else:
            self.position += wire_delta(ts, last_in)
        if self.mode == "zero":
            ts = self.offset + max(0, self.position)
        else:
            ts = self.position if self.position >= 0 else self.position & _MASK32
        self.started = True
        self.last_out = ts
        if ts > self.max_out:
            self.max_out = ts
        return ts
