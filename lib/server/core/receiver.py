"""Reading a long-lived connection without arming a timer for every recv.

Rules:
- `recv` reads the real non-blocking socket under gevent's and, when it has nothing, waits on
  one io watcher made once per connection (gevent's socket arms and cancels a timeout around
  every wait when the socket has one: the ingest hot path paid for it on every packet). A read
  that returned less than asked emptied the socket, so the next one waits for readiness first
  instead of paying a failing recv and its exception.
- The idle bound (`set_idle_timeout`, None = none; silences count from `not_before` at the
  earliest) is one repeating loop timer per connection
  that checks, a few times per bound, whether bytes arrived since its last tick. When nothing
  arrived for the whole bound it raises `socket.timeout` in the reading greenlet, and only while
  that greenlet waits in `recv` (never inside a hook or a send). So a silent peer is closed
  between `timeout` and `timeout * (1 + 1/TICKS)` after its last bytes.
- `stream(on_data)` is the hot path of a long-lived reader (a publisher, an edge's pull
  link): while the owning greenlet sleeps in it, each readable event runs one recv and
  `on_data(bytes)` inside the event loop's own io callback, with no greenlet switch and no
  readiness wait per read. `on_data` must not block (no sends that can wait, no hooks); it
  returns None to go on reading, or a value that is handed back to the owner, which then does
  the slow work (replies, commands) in its own greenlet and may stream again. The owner still
  owns the socket: the callback only reads, and only while the owner waits in `stream`.
  EOF returns None, a socket error or an exception from `on_data` is raised in the owner.
  With `merge` (SRS's merged read, `publish { mr on; mr_latency; }`) a read of less than
  4096 bytes pauses reading for mr_latency, so reads are fewer and larger, at the cost of that
  much latency (as SRS: stream latency >= mw_latency + mr_latency), and a peer that leaves
  is noticed up to that much later.
- `stream_messages(reader, on_messages)` is `stream` with the read and the chunk parse in C
  (lib/server/core/_pumpc.c, built with the C chunk reader): the io watcher calls the C pump,
  which runs Python (`on_messages(messages, nbytes)`) only when a read completed a message, so
  the partial reads of encoders that write a message's header and payload apart cost no Python.
  `can_pump(reader)` says when it applies (both accelerators built, that reader is the C one).
  With `on_media` (a source's on_media) the pump also has a media path: reads of plain audio
  and video go to `on_media` in C while `on_messages` keeps `pump.budget` (the bytes it may
  take before `on_messages` runs again) above 0; see _pumpc.c.
- A socket that is not a plain socket underneath (TLS) reads through gevent's own `recv`, and
  so does everything when the idle bound is not used; it cannot `stream` (`can_stream`).
"""
import _socket
import socket
import sys
import time

import gevent
from gevent import getcurrent
from gevent.hub import Waiter

try:
    from lib.rtmp._chunkc import ChunkReader as _CChunkReader
    from lib.server.core._pumpc import SocketPump
except (ImportError, AttributeError):   # not built (or a stale _chunkc): read in Python
    SocketPump = _CChunkReader = None

TICKS = 4                  # idle checks per timeout
MR_SMALL_BYTES = 4096      # SRS_MR_SMALL_BYTES: a read below this pauses a merged reader


class Receiver:
    __slots__ = ("sock", "raw", "hub", "watcher", "idle_timeout", "_timer", "_reader", "_reads",
                 "_drained", "_reads_at_tick", "_last_seen", "_streaming", "_merge",
                 "_merge_timer", "_pump", "_not_before")      # one per connection: players included

    def __init__(self, sock):
        self.sock = sock
        raw = getattr(sock, "_sock", None)    # gevent's plain socket underneath, not TLS
        self.raw = raw if isinstance(raw, _socket.socket) and not hasattr(sock, "do_handshake") else None
        self.hub = gevent.get_hub()
        self.watcher = None
        self.idle_timeout = None
        self._timer = None
        self._reader = None            # the greenlet waiting in recv, while it waits
        self._reads = 0                # recvs that returned data
        self._drained = False          # the last recv took less than asked: nothing is left
        self._reads_at_tick = 0
        self._last_seen = 0.0
        self._streaming = None         # (on_data, size, waiter) while the owner waits in stream
        self._merge = 0.0              # merged read: seconds to pause after a small read
        self._merge_timer = None       # ... and the pause under way
        self._pump = None              # the C pump while stream_messages runs
        self._not_before = 0.0         # no idle close before this monotonic time

    @property
    def can_stream(self):
        return self.raw is not None

    def recv(self, size):
        raw = self.raw
        if raw is None:
            return self.sock.recv(size)
        while True:
            if self._drained:          # the last read emptied the socket: wait before reading
                self._wait(raw)
            try:
                data = raw.recv(size)
            except (BlockingIOError, InterruptedError):
                self._drained = True
                continue
            self._reads += 1
            self._drained = len(data) < size
            return data

    def _wait(self, raw):
        if self.watcher is None:
            self.watcher = self.hub.loop.io(raw.fileno(), 1)
        self._reader = getcurrent()
        try:
            self.hub.wait(self.watcher)
        finally:
            self._reader = None
        self._drained = False

    def stream(self, on_data, size=65536, merge=0.0):
        """Read in the event loop until `on_data` returns a value (returned here), EOF (None)
        or an error (raised here). See the module rules. `merge` > 0 is SRS's merged read
        (`publish.mr`): after a read of less than MR_SMALL_BYTES, stop reading for `merge`
        seconds so the next read takes what arrived meanwhile at once."""
        if self.watcher is None:
            self.watcher = self.hub.loop.io(self.raw.fileno(), 1)
        waiter = Waiter(self.hub)
        self._streaming = (on_data, size, waiter)
        self._reader = getcurrent()
        self._merge = merge
        self.watcher.start(self._on_readable)
        try:
            return waiter.get()
        finally:
            self.watcher.stop()
            if self._merge_timer is not None:
                self._merge_timer.close()
                self._merge_timer = None
            self._streaming = None
            self._reader = None
            self._drained = False

    def can_pump(self, reader):
        """`stream_messages` works for `reader` (see the module rules)."""
        return SocketPump is not None and self.raw is not None and type(reader) is _CChunkReader

    def stream_messages(self, reader, on_messages, size=65536, on_media=None):
        """`stream` with recv and parse in C: `on_messages(messages, nbytes)` runs in the event
        loop for each read that completed a message (unless the media path took it: `on_media`
        and `pump.budget`, see the module rules); its first value that is not None is
        returned here, EOF returns None, an error is raised here."""
        if self.watcher is None:
            self.watcher = self.hub.loop.io(self.raw.fileno(), 1)
        waiter = Waiter(self.hub)
        watcher = self.watcher

        def on_stop(value, exc):
            watcher.stop()
            if exc is not None:
                waiter.throw(type(exc), exc, exc.__traceback__)
            else:
                waiter.switch(value)
        pump = self._pump = SocketPump(reader, self.raw.fileno(), on_messages, on_stop, size)
        pump.on_media = on_media
        self._reader = getcurrent()
        watcher.start(pump)
        try:
            return waiter.get()
        finally:
            watcher.stop()
            self._reads += pump.reads
            pump.close()
            self._pump = None
            self._reader = None
            self._drained = False

    def _resume(self):
        self._merge_timer.close()
        self._merge_timer = None
        if self._streaming is not None:
            self.watcher.start(self._on_readable)

    def _on_readable(self):
        """The io callback while streaming: runs in the hub, so it must never block."""
        streaming = self._streaming
        if streaming is None:
            return
        on_data, size, waiter = streaming
        try:
            data = self.raw.recv(size)
        except (BlockingIOError, InterruptedError):
            return
        except BaseException:                   # noqa: BLE001 - the owner decides
            self._hand_back(waiter, exc_info=sys.exc_info())
            return
        self._reads += 1
        if not data:
            self._hand_back(waiter, None)
            return
        try:
            result = on_data(data)
        except BaseException:                   # noqa: BLE001
            self._hand_back(waiter, exc_info=sys.exc_info())
            return
        if result is not None:
            self._hand_back(waiter, result)
        elif self._merge and len(data) < MR_SMALL_BYTES:
            self.watcher.stop()                 # merged read: let more arrive first
            # a new one-shot timer each time: gevent fires a restarted one at once
            self._merge_timer = self.hub.loop.timer(self._merge)
            self._merge_timer.start(self._resume)

    def _hand_back(self, waiter, value=None, exc_info=None):
        self.watcher.stop()
        self._streaming = None
        if exc_info is not None:
            waiter.throw(*exc_info)
        else:
            waiter.switch(value)

    def set_idle_timeout(self, seconds, not_before=None):
        """Raise socket.timeout in `recv` once nothing arrived for `seconds` (None: never),
        but not before the monotonic time `not_before` (a grace that an earlier, longer bound
        promised: SRS's first-packet window)."""
        self.idle_timeout = seconds
        self._not_before = not_before or 0.0
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.raw is None:
            self.sock.settimeout(seconds)
            return
        if seconds is None:
            return
        self._last_seen = time.monotonic()
        self._reads_at_tick = self._reads
        period = max(0.01, seconds / TICKS)
        self._timer = self.hub.loop.timer(period, period)
        self._timer.start(self._tick)

    def _tick(self):
        now = time.monotonic()
        reads = self._reads if self._pump is None else self._reads + self._pump.reads
        if reads != self._reads_at_tick:
            self._reads_at_tick = reads
            self._last_seen = now
        elif (now - max(self._last_seen, self._not_before) >= self.idle_timeout
              and self._reader is not None):
            self._reader.throw(socket.timeout("timed out"))

    def close(self):
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
