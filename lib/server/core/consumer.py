"""A player's view of a source: a cursor into the source's shared log plus a private queue.

Rules:
- A consumer never copies media: it sends slices of the source's shared encoded bytes.
- Sends are non-blocking `sendmsg` calls of at most IOV_MAX buffers; a full socket makes the
  consumer `blocked` and its own writer greenlet finishes the backlog, so a slow player never
  slows the source's flusher or other players.
- A socket error closes only this consumer and is reported once through `on_error`.
"""
import socket

import gevent
from gevent.socket import wait_write

from lib.rtmp.message import CSID_AUDIO, CSID_VIDEO
from lib.rtmp.timebase import PlayerTimebase

IOV_MAX = 1000
NO_TIMEBASE = PlayerTimebase("off", 0)
MEDIA_CSIDS = (CSID_VIDEO, CSID_AUDIO)   # the chunk streams whose messages chain (source.py)


def advance(bufs, sent):
    """The part of `bufs` not yet covered by `sent` bytes."""
    for i, b in enumerate(bufs):
        size = len(b)
        if sent < size:
            rest = bufs[i:]
            if sent:
                rest[0] = memoryview(b)[sent:]
            return rest
        sent -= size
    return []


class Consumer:
    """A player's view of a source: a cursor plus a private queue for its own control bytes."""

    def __init__(self, sock, kind="rtmp", on_error=None, on_shed=None):
        self.sock = sock
        self.raw = getattr(sock, "_sock", sock)   # the real non-blocking socket under gevent's
        self.kind = kind
        self.cursor = 0
        self.pending = []              # private bytes (control replies, start bytes) go first
        self.backlog = []
        self.blocked = False
        self.closed = False
        self.paused = False
        self.bytes_out = 0
        self.dropped = 0
        self.lagging = False           # the socket filled up since it last took everything
        self.timebase = NO_TIMEBASE    # this player's timestamps (set by Source.attach)
        self.sync = {}                 # RTMP: csid -> its chunk stream's state (timebase.py)
        self.unsynced = MEDIA_CSIDS    # chunk streams whose next message needs its own header
        self.on_error = on_error
        self.on_shed = on_shed         # callback(count) the first time this consumer is shed
        self._writer = None

    def reset_sync(self):
        """Its chunk streams start afresh: its next message on each gets its own fmt 0 header
        (after a skip, a resume, or private bytes that may use them)."""
        self.sync = {}
        self.unsynced = MEDIA_CSIDS

    def send_private(self, data, source=None):
        if data:
            self.reset_sync()
            self.pending.append(data)
            if source is not None and not self.blocked:
                self.flush(source)

    def flush(self, source):
        if self.closed or self.blocked:
            return
        bufs = self.pending
        self.pending = []
        if not self.paused:
            cursor = source.catch_up(self)
            if self.pending:           # catch_up queued fresh headers after a shed
                bufs.extend(self.pending)
                self.pending = []
            end = source.end
            if cursor < end:
                bufs.extend(source.bytes_from(self, cursor))
            self.cursor = end
        if bufs:
            self._send(bufs)
        if not self.blocked:
            self.lagging = False

    def shed(self, count):
        """The source moved this (slow) consumer past `count` messages to a keyframe."""
        self.dropped += count
        if self.on_shed is not None:
            callback, self.on_shed = self.on_shed, None
            callback(count)

    def _try_send(self, bufs):
        """One non-blocking sendmsg: the bytes sent, or None when the socket failed."""
        try:
            sent = self.raw.sendmsg(bufs)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as e:
            self._fail(e)
            return None
        self.bytes_out += sent
        return sent

    def _send(self, bufs):
        while bufs:
            batch = bufs[:IOV_MAX]
            sent = self._try_send(batch)
            if sent is None:
                return
            rest = advance(batch, sent)
            if rest:
                self._block(rest + bufs[IOV_MAX:])
                return
            bufs = bufs[IOV_MAX:]

    def _block(self, backlog):
        """The socket is full: the writer greenlet finishes `backlog`; the flusher skips us."""
        self.backlog = backlog
        self.blocked = True
        self.lagging = True
        if self._writer is None:
            self._writer = gevent.spawn(self._drain)

    def _drain(self):
        """Finish a backlog when the socket is writable again (only for slow players)."""
        try:
            while self.backlog and not self.closed:
                batch = self.backlog[:IOV_MAX]
                try:
                    wait_write(self.raw.fileno(), timeout=30)
                    sent = self.raw.sendmsg(batch)
                except (BlockingIOError, InterruptedError):
                    continue
                self.bytes_out += sent
                self.backlog = advance(batch, sent) + self.backlog[IOV_MAX:]
        except (OSError, socket.timeout) as e:
            self._fail(e)
        finally:
            self._writer = None
            self.blocked = False

    def _fail(self, err):
        if self.closed:
            return
        self.closed = True
        self.backlog = []
        if self.on_error is not None:
            self.on_error(err)

    def close(self):
        self.closed = True
        self.backlog = []
        if self._writer is not None:
            self._writer.kill(block=False)
