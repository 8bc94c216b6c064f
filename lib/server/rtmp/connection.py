"""One greenlet per RTMP client: drives a ServerSession over a gevent socket.

Rules:
- Bad bytes (ProtocolError) or a peer that goes away close only this connection, with one log
  line saying why. Nothing here logs per packet.
- Before play starts, session output goes straight to the socket; once the client plays, every
  byte goes through its Consumer so control replies never cut into shared media bytes.
- Hooks are paired: an accepted on_publish is always followed by one on_unpublish, an accepted
  on_play by one on_stop, an accepted on_connect by one on_close; cleanup runs in `finally`.
- The handshake and connect must finish within HANDSHAKE_TIMEOUT (slowloris guard).
- Order as SRS 7 (SrsRtmpConn::stream_service_cycle): connect is answered at once; once the
  client says play/publish, the stream (with its query merged into `param`) is known, and then
  refer `all`, on_connect, security, the source, refer `play`/`publish`, on_play/on_publish.
  (lib/server/rtmp/admission.py holds the on_connect/refer step and the play duration limit.)
- Work per step is bounded by messages, not bytes (issue 20 point 10): the messages of one read
  are handled MEDIA_PER_STEP at a time; the first step runs where the read ran (the event
  loop's io callback while streaming), each later one in this greenlet after the loop had its
  turn (`_steps`), in order, before the next read. So a publisher of tiny messages cannot hold
  the loop; it only slows itself down. The pure-Python chunk reader, ~30x slower per chunk than
  the C one, parses at most 4 KB per read.
"""
import os
import socket
import time
from types import SimpleNamespace

import gevent

from lib.rtmp import session as rs
from lib.rtmp.chunk import IMPLEMENTATION as CHUNK_READER
from lib.rtmp.errors import ProtocolError
from lib.rtmp.message import MSG_AGGREGATE, MSG_AUDIO, MSG_VIDEO
from lib.rtmp.limits import MAX_URL, check_request, check_text, clip
from lib.rtmp.url import discover
from lib.server.core.errors import PEER_LEFT, SOCKET_ERROR, Reject, socket_end
from lib.server.core import security
from lib.server.core.hooks import redact
from lib.server.core.client import ClientBase
from lib.server.core.consumer import Consumer
from lib.server.core.receiver import Receiver
from lib.server.rtmp import admission

NO_HOOKS = SimpleNamespace(enabled=False, on_connect=[], on_close=[], on_publish=[],
                           on_unpublish=[], on_play=[], on_stop=[])
HANDSHAKE_TIMEOUT = 10.0          # handshake + connect (slowloris guard)
SETUP_TIMEOUT = 30.0              # connect -> publish/play started (includes an edge's upstream)
RECV_SIZES = {"c": 65536, "python": 4096}     # per read: the worst 64 KB take ~2 ms in C, ~60 in Python
RECV_SIZE = RECV_SIZES[CHUNK_READER]
MEDIA_PER_STEP = 256              # messages handled per step of the event loop (~1 ms)
PUMP_MEDIA_BYTES = 65536          # the C pump's media path: bytes between two Python callbacks
# between steps: a timer, so the loop polls its sockets first (gevent runs sleep(0)'s callbacks
# back to back for up to its switch interval, 5 ms, or 50 of them, without polling)
STEP_PAUSE = 1e-6


class Backlog:
    """What a step of a read left to the connection's greenlet: session events to dispatch
    first, then `messages[start:]`."""
    __slots__ = ("events", "messages", "start")

    def __init__(self, events, messages, start):
        self.events, self.messages, self.start = events, messages, start


def _after_first_aggregate(batch, i):
    """Where a step ends in `batch` from `i`: after its first aggregate message, if any."""
    for j in range(i, len(batch)):
        if batch[j].type_id == MSG_AGGREGATE:
            return j + 1
    return len(batch)


class RtmpConnection(ClientBase):
    def __init__(self, server, sock, addr, trusted=False):
        super().__init__(server, sock, addr)
        self.trusted = trusted          # a link from another worker: no hooks, no security
        self.session = rs.ServerSession(now_ms=int(time.time() * 1000) & 0xFFFFFFFF)
        self.publishing = False
        self.got_media = False
        self.on_connect_done = False   # admission.py: on_connect once, when play/publish comes
        self.play_limit = None         # admission.PlayLimit when play asked for a duration
        self.receiver = Receiver(sock)  # recv without a timer per packet; publish idle bounds
        self.mr_buffer_set = False     # merged read sized the receive buffer (_merged_read)
        self.first_window_end = 0.0    # publish: end of SRS's first-packet window (monotonic)

    # ------------------------------------------------------------ main loop
    def run(self):
        server = self.server
        server.clients[self.cid] = self
        try:
            self._serve()
        except Reject as e:
            self.close_reason = clip(str(e))
            self.log.warn(f"close: {self.close_reason}")
        except ProtocolError as e:
            self.close_reason = f"protocol error: {e}"
            self.log.warn(f"close {self.ip}:{self.port}: protocol error: {clip(str(e))}")
        except gevent.Timeout as t:
            self.close_reason = "timeout"
            self.log.warn(f"close {self.ip}:{self.port}: {t.exception or 'setup timeout'}")
        except socket.timeout:
            self.close_reason = "publisher idle"
            self.log.warn(f"close {self.ip}:{self.port}: publisher sent no media for "
                          f"{self.receiver.idle_timeout:g}s")
        except OSError as e:
            end = socket_end(e)
            if end == PEER_LEFT:
                self.log.trace(f"client {self.ip}:{self.port} closed the connection (reset)")
            elif end == SOCKET_ERROR:
                self.close_reason = f"socket: {e}"
                self.log.warn(f"close {self.ip}:{self.port}: socket error: {e}")
        finally:
            self._cleanup()
            server.clients.pop(self.cid, None)

    def _serve(self):
        phases = ((HANDSHAKE_TIMEOUT, ("handshake", "wait_connect", "connecting"),
                   f"no handshake/connect in {HANDSHAKE_TIMEOUT:g}s"),
                  (SETUP_TIMEOUT, ("connected", "publish_pending", "play_pending"),
                   f"no publish/play in {SETUP_TIMEOUT:g}s"))
        for seconds, states, why in phases:
            timer = gevent.Timeout(seconds, why)
            timer.start()
            try:
                while self.session.state in states:
                    if not self._pump():
                        return
            except gevent.Timeout as t:
                if t is not timer:
                    raise
                raise gevent.Timeout(seconds, why) from None
            finally:
                timer.close()
        receiver = self.receiver
        while True:
            if self.got_media and self.session.state == "publishing" and receiver.can_stream:
                # the ingest hot path: media is read and published from the event loop's
                # callback; anything else comes back here (receiver.py)
                merge = self._merged_read()
                if not merge and receiver.can_pump(self.session.reader):
                    # recv and parse in C; Python only for complete messages
                    events = receiver.stream_messages(self.session.reader, self._messages_in_hub,
                                                      RECV_SIZE, self.source.on_media)
                else:
                    events = receiver.stream(self._media_in_hub, RECV_SIZE, merge)
                if events is None or not self._steps(events):     # None: the client closed
                    break
            elif not self._pump():
                break
        self.log.trace(f"client {self.ip}:{self.port} closed the connection")

    def _merged_read(self):
        """SRS's publish.mr: the pause after a small read (seconds), 0 when off or with
        min_latency (SRS's realtime mode). As SRS, the receive buffer is sized for the pause
        at 5 Mbps once it is on."""
        vhost_conf = self.vhost_conf
        publish = vhost_conf.publish
        if not publish.mr or vhost_conf.min_latency or publish.mr_latency <= 0:
            return 0.0
        if not self.mr_buffer_set:
            self.mr_buffer_set = True
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                     publish.mr_latency * 5000 // 8 // 2)
            except OSError:
                pass
        return publish.mr_latency / 1000.0

    def _media_in_hub(self, data):
        """Receiver.stream's callback (in the hub, must not block): the first step of what
        the read brought (`_step`); anything else is returned for `_steps` in this greenlet.
        The usual read (a few audio/video messages) is `_step`'s fast path, inlined here: this
        runs for every read of every publisher."""
        return self._messages_in_hub(self.session.reader.feed(data), len(data))

    def _messages_in_hub(self, messages, nbytes):
        """`_media_in_hub` after the parse: also the C pump's callback (receiver.py
        stream_messages), which parsed `nbytes` itself. Under the pump, it opens the pump's
        media path (plain audio and video straight to the source, in C) for the next reads
        only while the session is in the plain publishing state this fast path needs, and for
        at most PUMP_MEDIA_BYTES or the bytes before the next acknowledgement is due."""
        self.bytes_in += nbytes
        session = self.session
        session.count_received()
        pump = self.receiver._pump
        if pump is not None:
            pump.budget = 0            # closed unless this read ends in the plain state below
        if (len(messages) > MEDIA_PER_STEP or session.has_output() or session.held
                or session.state != "publishing"):
            return self._step(messages, 0)
        on_media = self.source.on_media
        for i, msg in enumerate(messages):
            t = msg.type_id
            if t != MSG_VIDEO and t != MSG_AUDIO:
                return self._step(messages, i)
            on_media(t, msg.timestamp, msg.payload)
        if pump is not None:
            pump.budget = session.bytes_before_ack(PUMP_MEDIA_BYTES)
        return None

    def _step(self, messages, start):
        """Up to MEDIA_PER_STEP of `messages[start:]`, and at most one aggregate (up to
        MAX_AGGREGATE_TAGS messages in one): once media flows, plain audio and video go to the
        source at once; from the first other message on, the session makes events. Returns
        None when all is done here, the events for `_dispatch` (also when the session has a
        reply to send, such as an acknowledgement: possibly no event then), or a Backlog when
        messages are left for later steps."""
        session = self.session
        end = len(messages)
        if start or end > MEDIA_PER_STEP:
            end = min(end, start + MEDIA_PER_STEP)
            batch = messages[start:end]
        else:
            batch = messages
        slow_from = 0
        fast = (self.got_media and not session.has_output() and not session.held
                and session.state == "publishing")
        if fast:
            slow_from = None
            on_media = self.source.on_media
            for i, msg in enumerate(batch):
                t = msg.type_id
                if t != MSG_VIDEO and t != MSG_AUDIO:
                    slow_from = i
                    break
                on_media(t, msg.timestamp, msg.payload)
        events = None
        if slow_from is not None:          # this greenlet's part (it sends first)
            cut = _after_first_aggregate(batch, slow_from)
            end = start + cut
            events = session.handle(batch[slow_from:cut])
            if fast and not (events or session.has_output() or session.held):
                events = None
        if end < len(messages):
            return Backlog(events or [], messages, end)
        return events

    def _steps(self, result):
        """This greenlet's part of a read (`_step`'s result): dispatch the events, then each
        step left after letting the event loop run. False once the connection closed."""
        while type(result) is Backlog:
            if not self._dispatch(result.events):
                return False
            gevent.sleep(STEP_PAUSE)           # other sockets, timers and flushes first
            result = self._step(result.messages, result.start)
        return result is None or self._dispatch(result)

    def _pump(self):
        data = self.receiver.recv(RECV_SIZE)
        if not data:
            return False
        self.bytes_in += len(data)
        session = self.session
        if session.state in ("handshake", "closed"):
            return self._dispatch(session.feed(data))
        return self._steps(self._step(session.read_messages(data), 0))

    def _dispatch(self, events):
        """Handle the session's events in order (and what it held back); False once closed."""
        while True:
            self._flush_session()
            for ev in events:
                handler = self._handlers.get(type(ev))
                if handler is not None:
                    handler(self, ev)
                    self._flush_session()
                if self.session.state == "closed":
                    return False
            if not self.session.held:
                return True
            events = self.session.feed(b"")   # messages the client pipelined after a decision

    def _flush_session(self):
        out = self.session.data_to_send()
        if not out:
            return
        if self.consumer is not None:
            self.consumer.send_private(out, self.source)
        else:
            self.sock.sendall(out)
            self.bytes_sent_direct += len(out)

    # ------------------------------------------------------------ events
    def _on_connect(self, ev):
        check_text("tcUrl", ev.tc_url, MAX_URL)
        req = discover(ev.tc_url, "", guess_stream=False)
        check_request(req)
        vhost_conf = self.server.config.vhost(req.vhost)
        if vhost_conf is None:
            self.session.reject_connect("vhost not found")
            self._flush_session()
            raise Reject(f"connect {redact(ev.tc_url)}: no vhost {req.vhost!r}")
        req.vhost = vhost_conf.name    # as SRS: the matched config vhost from here on
        if vhost_conf.tcp_nodelay:     # SRS default off: merged writes fill whole segments
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.req, self.vhost_conf = req, vhost_conf
        self.page_url = ev.command_object.get("pageUrl") if isinstance(ev.command_object.get("pageUrl"), str) else ""
        self.connect_object = ev.command_object
        self.connect_args = ev.args
        self._log_upnode(ev.args)
        self.log.trace(f"connect {self.ip}:{self.port} tcUrl={redact(ev.tc_url)} vhost={req.vhost} app={req.app}")
        # SRS 7: on_connect waits until the play/publish stream is known (admission.py)
        self.session.accept_connect({"srs_id": self.cid, "srs_pid": float(os.getpid())},
                                    chunk_size=vhost_conf.chunk_size)

    def _log_upnode(self, args):
        """An upstream SRS-style edge sends its identity in the connect args."""
        for a in args:
            if isinstance(a, dict) and "srs_sig" in a:
                pid = a.get("srs_pid")
                pid = int(pid) if isinstance(pid, float) else pid
                self.log.trace(f"edge upnode connected: server={a.get('srs_server')} "
                               f"pid={pid} id={a.get('srs_id')} ip={a.get('srs_server_ip')}")

    def hooks_conf(self):
        return NO_HOOKS if self.trusted else self.vhost_conf.http_hooks

    def _check_security(self, action):
        if self.trusted:
            return
        ok, reason = security.check(self.vhost_conf.security, action, self.ip)
        if not ok:
            code = "NetStream.Publish.BadName" if action == "publish" else "NetStream.Play.StreamNotFound"
            self.session.reject(code, reason)
            self._flush_session()
            raise Reject(reason)

    def _resolve_stream(self, stream):
        check_text("stream name", stream, MAX_URL)
        req = discover(self.req.tc_url, stream)
        check_request(req, stream_needed=True)
        vhost_conf = self.server.config.vhost(req.vhost)
        if vhost_conf is None:
            raise Reject(f"stream {stream}: no vhost {req.vhost!r}")
        req.vhost = vhost_conf.name
        self.req, self.vhost_conf = req, vhost_conf
        return req

    def _on_publish(self, ev):
        req = self._resolve_stream(ev.stream)
        self.role = "publish"
        admission.on_stream_known(self, "publish")
        self._check_security("publish")
        key = self.server.stream_key(req, self.vhost_conf)
        # pinned: the source stays registered while this publisher waits in hooks or for an
        # origin, even if every waiting player leaves meanwhile
        with self.server.sources.pinned(key, req.vhost, req.app, req.stream,
                                        self.vhost_conf) as source:
            self._refuse_second_publisher(source, key)
            admission.check_refer(self, "publish", source)
            ok, reason = self.call_hook("on_publish")      # owes on_unpublish from here on
            if not ok:
                self.session.reject("NetStream.Publish.BadName", "rejected by on_publish")
                self._flush_session()
                raise Reject(f"on_publish rejected: {reason}")
            self._refuse_second_publisher(source, key)    # another one won while the hook ran
            try:
                self.server.before_publish(self, source)
            except Reject:
                self.session.reject("NetStream.Publish.BadName", "publish refused")
                self._flush_session()
                raise
            source.on_publish(self)
            self.source = source
            self.publishing = True
        self.got_media = False
        firstpkt = self.vhost_conf.publish.firstpkt_timeout / 1000.0
        self.first_window_end = time.monotonic() + firstpkt
        self.receiver.set_idle_timeout(firstpkt)
        self.server.on_publish_started(self, source)
        self.session.accept_publish()
        self.log.trace(f"publish {key} from {self.ip}:{self.port} type={ev.publish_type}")

    def _refuse_second_publisher(self, source, key):
        if not source.can_publish():
            self.session.reject("NetStream.Publish.BadName", "Stream already publishing")
            self._flush_session()
            raise Reject(f"publish {key}: already publishing, second publisher refused")

    def _on_media(self, ev):
        if not self.got_media:
            self.got_media = True
            # as SRS (SrsRtmpConn::do_publishing): the first window is firstpkt_timeout
            # long whatever arrives in it; normal_timeout bounds the silences after it. An
            # encoder that sends onMetaData, then opens its other outputs (ffmpeg's tee) before
            # media flows, is not cut at normal_timeout.
            self.receiver.set_idle_timeout(self.vhost_conf.publish.normal_timeout / 1000.0,
                                           not_before=self.first_window_end)
        self.source.on_media(ev.type_id, ev.timestamp, ev.payload)

    def _on_unpublish(self, ev):
        self._stop_publish("unpublished")

    def _stop_publish(self, why):
        if not self.publishing:
            return
        self.publishing = False
        self.receiver.set_idle_timeout(None)
        source = self.source
        self.source = None
        self.server.on_publish_stopped(self, source)
        source.on_unpublish(self)
        self.log.trace(f"unpublish {source.key}: {why}")
        self.settle("on_unpublish")

    def _on_play(self, ev):
        req = self._resolve_stream(ev.stream)
        self.role = "play"
        admission.on_stream_known(self, "play")
        self._check_security("play")
        key = self.server.stream_key(req, self.vhost_conf)
        # the source first, as SRS: on_play's stream_id is the API id of this stream
        with self.server.sources.pinned(key, req.vhost, req.app, req.stream,
                                        self.vhost_conf) as source:
            admission.check_refer(self, "play", source)
            ok, reason = self.call_hook("on_play")        # owes on_stop from here on
            if not ok:
                self.session.reject("NetStream.Play.StreamNotFound", "rejected by on_play")
                self._flush_session()
                raise Reject(f"on_play rejected: {reason}")
            try:
                self.server.before_play(self, source)
            except Reject:
                self.session.reject("NetStream.Play.StreamNotFound", "play refused")
                self._flush_session()
                raise
            self.session.accept_play()
            self._flush_session()
            self.source = source
            self.consumer = Consumer(self.sock, "rtmp", on_error=self._on_consumer_error,
                                     on_shed=self._on_shed)
            source.attach(self.consumer)
            self.play_limit = admission.start_play_limit(self, source, ev.duration)
        self.log.trace(f"play {key} to {self.ip}:{self.port}")

    def kick(self, reason, status=None):
        """Close this client from another greenlet (edge not found, API kick, give-up)."""
        self.close_reason = reason
        self.log.warn(f"close {self.ip}:{self.port}: {reason}")
        if status is not None and self.session.state in ("playing", "publishing", "play_pending",
                                                          "publish_pending"):
            try:
                self.session.reject(*status)
                self._flush_session()
            except (OSError, ProtocolError):
                pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _on_shed(self, count):
        self.log.warn(f"player {self.ip}:{self.port} too slow: skipped {count} messages to the "
                      f"newest keyframe (logged once; the API counts every skip)")

    def _on_consumer_error(self, err):
        self.log.trace(f"player write failed: {err}")
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _on_pause(self, ev):
        if self.consumer is not None:
            self.consumer.paused = ev.paused
            if not ev.paused:
                self.consumer.cursor = self.source.end
                self.consumer.pending.extend(self.source.start_bytes_for(self.consumer))
                self.consumer.flush(self.source)

    def _on_stop_play(self, ev):
        self._stop_play()

    def _stop_play(self):
        consumer = self.drop_consumer()
        if consumer is None:
            return
        consumer.close()
        if self.play_limit is not None:
            self.play_limit.stop()
            self.play_limit = None
        source = self.source
        self.source = None
        source.detach(consumer)
        self.server.after_play(self, source)
        self.settle("on_stop")

    _handlers = {
        rs.ConnectRequest: _on_connect,
        rs.PublishRequest: _on_publish,
        rs.PlayRequest: _on_play,
        rs.Media: _on_media,
        rs.Unpublish: _on_unpublish,
        rs.StopPlay: _on_stop_play,
        rs.Pause: _on_pause,
    }

    # ------------------------------------------------------------ teardown
    def _cleanup(self):
        try:
            self._stop_publish("client closed")
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            self.log.error(f"unpublish cleanup failed: {e!r}")
        try:
            self._stop_play()
        except Exception as e:  # noqa: BLE001
            self.log.error(f"play cleanup failed: {e!r}")
        self.settle_all()               # refused after an accepted hook: its twin still goes
        self.receiver.close()
        try:
            self.sock.close()
        except OSError:
            pass
