"""Give memory the server freed back to the system after a load leaves (glibc malloc_trim).

Why: the media a load holds (GOP caches, players' queues, messages in flight) is many small
objects freed by reference counting when streams end; CPython returns them to glibc's heap, and
glibc keeps freed pages in the middle of that heap for reuse, so the process's RSS stays at its
peak for good (measured: docs/performance.md "Where the memory of a process storm stays").

Rules:
- Every CHECK_EVERY seconds the plugin compares the sources (what holds media: GOP caches,
  players' queues) with those of the last check plus those created since: when some ended,
  however briefly they lived, it calls malloc_trim(0) once, which hands the free pages back
  (madvise). Never while streams only come.
- One trace line per trim that returned at least LOG_ABOVE_KB, with the time it took (the event
  loop waits for it: 3.9 ms to return 46 MB in tests/test_memory_release.py).
- Without glibc (musl, macOS) it does nothing. `runtime_counts()` adds `malloc_trims` and
  `trimmed_kb` to /api/v1/debug/runtime.
"""
import ctypes
import time

import gevent

from lib.server.api.stats import rss_kbyte

CHECK_EVERY = 5.0
LOG_ABOVE_KB = 10_000


def _libc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class MemoryPlugin:
    def __init__(self, server, check_every=CHECK_EVERY):
        self.server = server
        self.check_every = check_every
        self.trim = _libc_trim()
        self.trims = 0
        self.trimmed_kb = 0
        self._last = 0              # sources at the last check
        self._created = 0           # sources created since
        self._greenlet = None

    def on_server_start(self):
        if self.trim is not None:
            self._greenlet = gevent.spawn(self._run)

    def on_server_stop(self):
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def on_source_created(self, source):
        self._created += 1

    def _run(self):
        while True:
            gevent.sleep(self.check_every)
            self.check()

    def check(self):
        now = len(self.server.sources.sources)
        if now < self._last + self._created:
            self._trim()
        self._last, self._created = now, 0

    def _trim(self):
        before, t0 = rss_kbyte(), time.perf_counter()
        self.trim(0)
        took, freed = time.perf_counter() - t0, max(0, before - rss_kbyte())
        self.trims += 1
        self.trimmed_kb += freed
        if freed >= LOG_ABOVE_KB:
            self.server.log.trace(f"memory: {freed // 1024} MB freed by ended streams returned "
                                  f"to the system (malloc_trim, {took * 1000:.1f} ms)")

    def runtime_counts(self):
        return {"malloc_trims": self.trims, "trimmed_kb": self.trimmed_kb}
