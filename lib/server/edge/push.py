"""Publishing a local source to another server over RTMP, with failover and a bounded queue.

Used by the edge (a publish to an edge vhost is proxied to an origin) and by `forward` on an
origin (each published stream is pushed to other servers).

Rules:
- A Pusher is a source sink: `on_message` only appends to its queue and wakes its greenlet.
- The queue holds at most `queue_ms` of media; older media is shed to the next keyframe, and
  metadata and sequence headers are re-sent first after any reconnect.
- Targets are tried in order with Upstreams (sticky, capped exponential backoff). In `give_up`
  mode (edge) a round in which every target failed calls `on_give_up(reason)` and stops; without
  it (forward) the pusher keeps retrying until stopped.
- One greenlet writes to the link, another reads it (acks, pings, errors); socket writes are
  serialized with a lock.
"""
import time
from collections import deque

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from lib.rtmp import session as rs
from lib.rtmp.message import MSG_VIDEO
from lib.server.core.hooks import redact
from lib.server.edge.upstream import LinkError, Upstreams, format_origin, open_link

PUBLISH_TIMEOUT = 5.0


class Pusher:
    def __init__(self, source, targets, names, log, connect_args=(), queue_ms=30000,
                 give_up=False, on_give_up=None, what="forward"):
        self.source = source
        self.upstreams = Upstreams(targets)
        self.names = names                  # origin -> (tc_url, app, stream)
        self.log = log
        self.connect_args = connect_args
        self.queue_ms = queue_ms
        self.give_up = give_up
        self.on_give_up = on_give_up
        self.what = what
        self.queue = deque()
        self.link = None
        self.lock = Semaphore()
        self.wake = Event()
        self.stopped = False
        self.greenlet = None
        self.reader = None
        self.sent = 0
        self.dropped = 0
        self.last_error = ""
        self.connected_since = None

    # ------------------------------------------------------------ sink interface
    def on_publish(self, source):
        pass

    def on_unpublish(self, source):
        pass

    def on_message(self, msg):
        q = self.queue
        q.append(msg)
        if len(q) > 64 and msg.timestamp - q[0].timestamp > self.queue_ms:
            self._shed()
        if not self.wake.is_set():
            self.wake.set()

    def _shed(self):
        """Drop the oldest media up to the next keyframe (keeps memory bounded)."""
        q = self.queue
        newest = q[-1].timestamp
        while q and newest - q[0].timestamp > self.queue_ms:
            q.popleft()
            self.dropped += 1
        while q and not q[0].is_keyframe and q[0].type_id == MSG_VIDEO:
            q.popleft()
            self.dropped += 1

    # ------------------------------------------------------------ lifecycle
    def connect_first(self):
        """Blocking: one round over the targets until one accepts the publish (edge)."""
        errors = []
        for _ in range(len(self.upstreams.origins)):
            origin, _wait = self.upstreams.choose()
            try:
                self._connect(origin)
                return True
            except LinkError as e:
                errors.append(str(e))
                self.upstreams.failed(origin)
        self.last_error = "; ".join(errors)
        raise LinkError(self.last_error)

    def start(self):
        self.greenlet = gevent.spawn(self._run)

    def stop(self):
        self.stopped = True
        link = self.link
        if link is not None:
            try:
                with self.lock:
                    link.session.close_stream()
                    link.flush()
            except (OSError, LinkError):
                pass
        self._drop_link()
        for g in (self.greenlet, self.reader):
            if g is not None and g is not gevent.getcurrent():
                g.kill(block=False)

    # ------------------------------------------------------------ internals
    def _connect(self, origin):
        tc_url, app, stream = self.names(origin)
        link = open_link(origin, tc_url, app, connect_args=self.connect_args)
        try:
            link.session.publish(stream)
            link.flush()
            events = link.wait_state(("publishing", "closed"), PUBLISH_TIMEOUT)
        except (LinkError, OSError) as e:
            link.close()
            raise LinkError(f"{self.what} {format_origin(origin)}: {e}") from e
        if link.session.state != "publishing":
            link.close()
            codes = [e.code for e in events if isinstance(e, rs.Status)]
            raise LinkError(f"{self.what} {format_origin(origin)}: publish refused {codes}")
        self.link = link
        self.connected_since = time.time()
        self.upstreams.succeeded(origin)
        self.log.trace(f"{self.what}: publishing {redact(stream)} to {format_origin(origin)} ({redact(tc_url)})")
        self._send_headers()
        self.reader = gevent.spawn(self._read, link)

    def _send_headers(self):
        src = self.source
        for m in (src.metadata, src.video_sh, src.audio_sh):
            if m is not None:
                self.link.session.send_media(m.type_id, m.timestamp, m.payload)
        # restart at a keyframe so the far side can decode at once
        while self.queue and self.queue[0].type_id == MSG_VIDEO and not self.queue[0].is_keyframe \
                and not self.queue[0].is_sequence_header:
            self.queue.popleft()
        with self.lock:
            self.link.flush()

    def _read(self, link):
        try:
            while not self.stopped and self.link is link:
                for ev in link.recv_events(3600):
                    if isinstance(ev, rs.Status) and ev.level == "error":
                        raise LinkError(f"{format_origin(link.origin)}: {ev.code}")
                with self.lock:
                    link.flush()
        except (LinkError, OSError) as e:
            if self.link is link and not self.stopped:
                self.last_error = str(e)
                self._drop_link()
                self.wake.set()

    def _drop_link(self):
        link, self.link = self.link, None
        if link is not None:
            link.close()

    def _run(self):
        failed_round = set()
        while not self.stopped:
            if self.link is None:
                origin, wait = self.upstreams.choose()
                if wait:
                    gevent.sleep(wait)
                try:
                    self._connect(origin)
                    failed_round.clear()
                except LinkError as e:
                    self.last_error = str(e)
                    self.log.warn(f"{self.what}: {e}")
                    self.upstreams.failed(origin)
                    failed_round.add(origin)
                    if self.give_up and failed_round >= set(self.upstreams.origins):
                        if self.on_give_up is not None:
                            self.on_give_up(f"{self.what}: every origin failed: {e}")
                        return
                    continue
            self.wake.wait(1.0)
            self.wake.clear()
            self._send_queue()

    def _send_queue(self):
        link = self.link
        if link is None:
            return
        q = self.queue
        session = link.session
        count = 0
        while q and count < 256:
            m = q.popleft()
            session.send_media(m.type_id, m.timestamp, m.payload)
            count += 1
        try:
            with self.lock:
                link.flush()
            self.sent += count
        except OSError as e:
            self.last_error = f"{format_origin(link.origin)}: {e}"
            self.log.warn(f"{self.what}: link lost: {e}")
            self._drop_link()
        if q:
            self.wake.set()
