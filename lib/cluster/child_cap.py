"""How many child processes (transcode, exec, ingest) may run: a global cap and a per-vhost
cap, sans-IO (counts only; `now` passed in for the log rate).

Rules (this module owns them):
- admit(vhost, vhost_limit, now) admits a process when the global count is below `limit` and
  the vhost's count below `vhost_limit` (0: only the global cap applies); otherwise it counts
  a refusal for the vhost and globally. `force` (ingests: the operator's own config) always
  admits, but the process still takes its slot, so publishers get what is left.
- A slot is held from admit until release(vhost): the driver releases it when the child is
  gone (after a stop has waited for its exit), not when the API stops listing it.
- One log line per cap (the global one, each vhost's) per LOG_EVERY seconds while refusals go
  on, with the refusals since the last line: a storm of publishers makes one line, not one per
  refusal. admit returns that line (or None); the caller logs it.
"""

LOG_EVERY = 60.0


class ChildCap:
    def __init__(self, limit):
        self.limit = limit
        self.count = 0
        self.refused = 0
        self.vhosts = {}            # vhost -> {"count", "max", "refused"}
        self._logged = {}           # scope -> [time of the last line, refusals since]

    def _vhost(self, vhost):
        return self.vhosts.setdefault(vhost, {"count": 0, "max": 0, "refused": 0})

    def admit(self, vhost, vhost_limit, now, force=False):
        """(admitted, a log line or None)."""
        row = self._vhost(vhost)
        row["max"] = vhost_limit
        if force or (self.count < self.limit and (not vhost_limit or row["count"] < vhost_limit)):
            self.count += 1
            row["count"] += 1
            return True, None
        self.refused += 1
        row["refused"] += 1
        if self.count >= self.limit:
            scope, limit, running = "global", self.limit, self.count
        else:
            scope, limit, running = f"vhost {vhost}", vhost_limit, row["count"]
        return False, self._line(scope, limit, running, now)

    def _line(self, scope, limit, running, now):
        last = self._logged.setdefault(scope, [None, 0])
        last[1] += 1
        if last[0] is not None and now - last[0] < LOG_EVERY:
            return None
        since, last[:] = last[1], [now, 0]
        return (f"process cap reached: max_processes {limit} ({scope}), {running} running; "
                f"transcode/exec for new publishers refused ({since} refused since the last "
                f"line, at most one line per {LOG_EVERY:g}s)")

    def release(self, vhost):
        row = self._vhost(vhost)
        self.count = max(0, self.count - 1)
        row["count"] = max(0, row["count"] - 1)

    def describe(self):
        return {"count": self.count, "max": self.limit, "refused": self.refused,
                "vhosts": {name: dict(row) for name, row in sorted(self.vhosts.items())}}
