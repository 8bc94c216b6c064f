"""Publishing a local source to another server: the push link's driver (edge publish proxy and
`forward`), one greenlet per link.

Rules:
- Every decision (which target, when to retry, back off or give up) is made by
  lib/cluster/push.py's PushLink; this module performs its actions and feeds events back.
- One greenlet (`_run`) owns the socket and the ClientSession: it connects, sends queued media,
  reads the far side's acks/pings/errors and answers them. The source only calls the sink
  method `on_message`, which queues (MediaQueue, bounded by queue_ms) and wakes the owner.
- After every connect, metadata and sequence headers go first and the queue restarts at a
  keyframe, so the far side can decode at once.
- `stop()` ends the link at once: a connect in progress (which may block for seconds, holding
  the stream name at the far side) is cut by killing the owner, which closes its socket.
- `accepted` (an AsyncResult; edge publish waits on it) becomes None when the first target
  accepted, or the reason every target failed.
- Never dies silently: an unexpected error stops the link with one error line and, in give-up
  mode, disconnects the publisher.
"""
import time

import gevent
from gevent.event import AsyncResult, Event

from lib.cluster.actions import Accepted, Close, Connect, GiveUp, Stop
from lib.cluster.origins import format_origin
from lib.cluster.push import MediaQueue, PushLink
from lib.rtmp import session as rs
from lib.server.core.hooks import redact
from lib.server.edge.driver import LinkDriver
from lib.server.edge.upstream import LinkError, open_stream

BATCH = 256                 # messages written per turn before reading and yielding


class Pusher(LinkDriver):
    def __init__(self, source, targets, names, log, connect_args=(), queue_ms=30000,
                 give_up=False, on_give_up=None, what="forward", clock=time.monotonic):
        self.source = source
        self.names = names                  # origin -> (tc_url, app, stream)
        self.log = log
        self.connect_args = connect_args
        self.on_give_up = on_give_up
        self.what = what
        self.clock = clock
        self.machine = PushLink(targets, give_up, clock())
        self.queue = MediaQueue(queue_ms)
        self.link = None
        self.wake = Event()
        self.accepted = AsyncResult()       # None once accepted, else the reason it never was
        self.greenlet = None
        self.connecting = False             # the owner is blocked in open_stream
        self.sent = 0

    # ------------------------------------------------------------ sink interface (source's greenlet)
    def on_publish(self, source):
        pass

    def on_unpublish(self, source):
        pass

    def on_message(self, msg):
        self.queue.push(msg)
        if not self.wake.is_set():
            self.wake.set()

    @property
    def dropped(self):
        return self.queue.dropped

    @property
    def last_error(self):
        return self.machine.last_error

    # ------------------------------------------------------------ lifecycle (any greenlet)
    def start(self):
        self.machine.start(self.clock())
        self.greenlet = gevent.spawn(self._run)

    def stop(self):
        self.machine.stop(self.clock(), "stopped")
        self.wake.set()
        if self.connecting and self.greenlet is not None and gevent.getcurrent() is not self.greenlet:
            self.greenlet.kill(block=False)  # a connect may block for seconds: end it now

    # ------------------------------------------------------------ the owner greenlet
    def _run(self):
        try:
            self._loop()
        except gevent.GreenletExit:
            raise
        except Exception as e:  # noqa: BLE001 - never die silently
            self.log.error(f"{self.what}: link crashed: {e!r}")
            self._give_up(f"{self.what}: link crashed: {e!r}")
        finally:
            self._close(graceful=not self.machine.error)
            if not self.accepted.ready():
                self.accepted.set(self.machine.last_error or "stopped")

    def _io(self, link):
        if link.readable:
            self._read(link)
            return True
        if len(self.queue):
            self._send(link)
            gevent.sleep(0)                  # let the publisher's greenlet run between batches
            return True
        return False

    def _perform(self, actions):
        for action in actions:
            if isinstance(action, Connect):
                self._connect(action.origin)
            elif isinstance(action, Accepted):
                self._accepted(action)
            elif isinstance(action, Close):
                self._close(graceful=self.machine.state == "stopped" and not self.machine.error)
            elif isinstance(action, GiveUp):
                self._give_up(f"{self.what}: {action.reason}")
            elif isinstance(action, Stop):
                if self.machine.error:
                    self.log.error(f"{self.what}: {self.machine.error}")
                return True
        return False

    def _connect(self, origin):
        tc_url, app, stream = self.names(origin)
        self.connecting = True
        try:
            link = open_stream(origin, tc_url, app, stream, "publish",
                               connect_args=self.connect_args)
        except LinkError as e:
            self.log.warn(f"{self.what} {format_origin(origin)}: {e}")
            if not self.machine.actions:
                self.machine.link_failed(str(e), self.clock())
            return
        finally:
            self.connecting = False
        if self.machine.actions or self.machine.origin != origin:
            link.close()                      # stopped meanwhile
            return
        self.link = link
        self.log.trace(f"{self.what}: publishing {redact(stream)} to {format_origin(origin)} "
                       f"({redact(tc_url)})")
        self.machine.link_up(self.clock())

    def _accepted(self, action):
        """Metadata and sequence headers first, then media from a keyframe."""
        src, session = self.source, self.link.session
        for m in (src.metadata, src.video_sh, src.audio_sh):
            if m is not None:
                session.send_media(m.type_id, m.timestamp, m.payload)
        self.queue.restart_at_keyframe()
        self._flush(self.link)
        if action.first and not self.accepted.ready():
            self.accepted.set(None)

    def _send(self, link):
        session = link.session
        batch = self.queue.pop_batch(BATCH)
        for m in batch:
            session.send_media(m.type_id, m.timestamp, m.payload)
        if self._flush(link):
            self.sent += len(batch)

    def _read(self, link):
        try:
            for ev in link.read_available():
                if isinstance(ev, rs.Status) and ev.level == "error":
                    raise LinkError(f"{format_origin(link.origin)}: {ev.code}")
        except LinkError as e:
            self._link_failed(link, e)
            return
        self._flush(link)

    def _flush(self, link):
        try:
            link.flush()
            return True
        except LinkError as e:
            self._link_failed(link, e)
            return False

    def _link_failed(self, link, error):
        if self.link is link:
            self.log.warn(f"{self.what}: link lost: {error}")
            self.machine.link_failed(str(error), self.clock())

    def _give_up(self, why):
        if not self.accepted.ready():
            self.accepted.set(why)
        elif self.on_give_up is not None:
            self.on_give_up(why)

    def _close(self, graceful):
        link, self.link = self.link, None
        if link is None:
            return
        if graceful and link.session.state == "publishing":
            try:
                while len(self.queue):      # what the publisher sent before it left goes too
                    for m in self.queue.pop_batch(BATCH):
                        link.session.send_media(m.type_id, m.timestamp, m.payload)
                    link.flush()
                link.session.close_stream()
                link.flush()
            except (LinkError, OSError):
                pass
        link.close()

    def describe(self):
        info = self.machine.describe()
        info.update(sent=self.sent, dropped=self.queue.dropped, queued=len(self.queue))
        return info
