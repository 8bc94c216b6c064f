"""When a file-writing sink (HLS, DVR) says that its writes fail, and that they work again.

Sans-IO: the caller does the IO, measures the free space and passes `now` (seconds, any clock
that only moves forward).

Rules (this module owns them):
- One WriteFailures per stream and sink. `failed(now, error, free_bytes)` counts one failed
  write and returns the line to log, or None: at most one line per INTERVAL seconds (the
  first failure is said at once), whether writes keep failing or flap, each with the error,
  the free space and the failures not yet said. A full disk costs one line a minute per stream
  and sink, whatever the segment rate.
- `succeeded(now)` after a batch of writes that all worked: returns one line saying the writes
  work again when a failure line was said since the last such line, else None (so at most two
  lines per INTERVAL).
- `describe()` is what the API shows: {write_errors, last_error, failing}.
"""
INTERVAL = 60.0


def format_bytes(count):
    """`count` bytes as a short human figure; None (not measured) as "unknown"."""
    if count is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


class WriteFailures:
    interval = INTERVAL

    def __init__(self, what):
        self.what = what                # e.g. "hls __defaultVhost__/live/livestream"
        self.write_errors = 0           # failed writes since this object exists
        self.last_error = None
        self.failing = 0                # failures since the last success
        self._unsaid = 0                # failures since the last line
        self._said_at = None            # `now` of the last failure line
        self._owed = False              # a failure line awaits its "work again"

    def failed(self, now, error, free_bytes=None):
        self.write_errors += 1
        self.failing += 1
        self._unsaid += 1
        self.last_error = error
        if self._said_at is not None and now - self._said_at < self.interval:
            return None
        count, self._unsaid, self._said_at, self._owed = self._unsaid, 0, now, True
        more = f" ({count} failed writes since the last line)" if count > 1 else ""
        return (f"{self.what}: {error}; {format_bytes(free_bytes)} free{more}; "
                f"said at most once a minute")

    def succeeded(self, now):
        count, self.failing = self.failing, 0
        if not self._owed:
            return None
        self._owed = False
        return f"{self.what}: writes work again ({count} failed in a row before)"

    def describe(self):
        return {"write_errors": self.write_errors, "last_error": self.last_error,
                "failing": self.failing > 0}
