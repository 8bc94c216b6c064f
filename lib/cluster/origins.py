"""Which origin (or push target) to use next: sticky choice with capped exponential backoff.

Rules (this module owns them):
- Stay on the origin that works; move to the next in list order only on failure.
- A failed origin may be tried again after its backoff: BACKOFF_FIRST, doubling per consecutive
  failure, capped at BACKOFF_CAP; a success resets it. Never a fixed sleep, never a tight loop.
- When every origin is backing off, the one whose backoff ends first is chosen, with the wait.
- `update(origins)` (reload) keeps the current origin when it is still listed.
- Time is passed in (`now`, seconds, any monotonic origin); nothing here reads a clock.
"""

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 8.0


class OriginPicker:
    def __init__(self, origins):
        if not origins:
            raise ValueError("no origin")
        self.origins = list(origins)
        self.index = 0
        self.backoff = {o: 0.0 for o in self.origins}
        self.retry_at = {o: 0.0 for o in self.origins}
        self.failovers = 0

    @property
    def current(self):
        return self.origins[self.index]

    def update(self, origins):
        """A reload changed the list (non-empty): keep the current origin if still listed."""
        if not origins:
            raise ValueError("no origin")
        cur = self.current
        self.origins = list(origins)
        for o in self.origins:
            self.backoff.setdefault(o, 0.0)
            self.retry_at.setdefault(o, 0.0)
        self.index = self.origins.index(cur) if cur in self.origins else 0

    def choose(self, now):
        """(origin, seconds to wait before trying it): the current one if it may be tried,
        else the next one in order that may, else the one whose backoff ends first."""
        n = len(self.origins)
        for step in range(n):
            o = self.origins[(self.index + step) % n]
            if self.retry_at[o] <= now:
                if step:
                    self.index = (self.index + step) % n
                return o, 0.0
        soonest = min(self.origins, key=lambda o: self.retry_at[o])
        self.index = self.origins.index(soonest)
        return soonest, max(0.0, self.retry_at[soonest] - now)

    def failed(self, origin, now):
        b = self.backoff.get(origin, 0.0)
        b = BACKOFF_FIRST if b == 0 else min(BACKOFF_CAP, b * 2)
        self.backoff[origin] = b
        self.retry_at[origin] = now + b
        if len(self.origins) > 1 and origin == self.current:
            self.index = (self.index + 1) % len(self.origins)
            self.failovers += 1

    def succeeded(self, origin):
        self.backoff[origin] = 0.0
        self.retry_at[origin] = 0.0


def format_origin(origin):
    return f"{origin[0]}:{origin[1]}"
