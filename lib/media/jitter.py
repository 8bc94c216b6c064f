"""Timestamp correction for a live source (SRS's time_jitter), sans-IO.

Rules: `full` makes timestamps monotonic per source across publishers: a step bigger than
MAX_JITTER_MS either way is replaced by DEFAULT_FRAME_MS, so a republish or an upstream switch
continues right after the last timestamp players saw. `zero` starts at 0 for each publisher.
`off` passes timestamps through. `max_out` is the largest timestamp out in every mode (data
messages sit there on the timeline). The corrector is kept for the source's lifetime.
A re-anchor (jump or new publisher) continues after the *largest* timestamp sent so far, so
neither the audio nor the video track ever goes backwards across it.
"""

MAX_JITTER_MS = 250
DEFAULT_FRAME_MS = 10


class Jitter:
    __slots__ = ("mode", "last_in", "last_out", "max_out", "zero_base", "started")

    def __init__(self, mode="full"):
        self.mode = mode
        self.last_in = 0
        self.last_out = 0
        self.max_out = 0
        self.zero_base = None
        self.started = False

    def restart(self):
        """A new publisher (or upstream) begins: its first timestamp is re-anchored."""
        self.zero_base = None
        if self.started:
            self.last_in = None

    def correct(self, ts):
        if self.mode != "full":
            if self.mode == "zero":
                if self.zero_base is None:
                    self.zero_base = ts
                ts = max(0, ts - self.zero_base)
            self.last_out = ts
            if ts > self.max_out:
                self.max_out = ts
            return ts
        if not self.started:
            self.started = True
            self.last_in = ts
            self.last_out = 0
            return 0
        delta = None if self.last_in is None else ts - self.last_in
        if delta is None or delta > MAX_JITTER_MS or delta < -MAX_JITTER_MS:
            out = self.max_out + DEFAULT_FRAME_MS
        else:
            out = max(0, self.last_out + delta)
        self.last_in = ts
        self.last_out = out
        if out > self.max_out:
            self.max_out = out
        return out
