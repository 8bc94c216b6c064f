"""HTTP-FLV and HTTP-TS (`vhost.http_remux`, SRS semantics): mounts, the player, the response.

Rules (this module owns them):
- The vhost is `?vhost=`/`?domain=` else the Host header (config fallback to `__defaultVhost__`);
  its `mount` with `[vhost]` replaced, and `__defaultVhost__/` or a leading `<vhost>/` (the Host
  already chose it) removed, is matched against the path with `[app]` (may hold slashes) and
  `[stream]` (one segment). A mount without `[vhost]` (`[app]/[stream].flv`) therefore serves
  every Host that maps to its vhost.
- Not an edge and no publisher: the static file of that name if any, else the player waits
  for a publisher like an RTMP player (SRS does too). An edge vhost: the plugins decide.
  `before_play` raising means 404. Either way the answer waits (on the source's
  `media_ready` event, no polling) until the source has media, at most
  `play.publisher_wait` seconds (then 404); the edge calling `player.kick()` first (not found
  on any origin) means 404.
- A kick is never lost, whatever state the player is in: before the response starts the
  player answers 404 and the connection closes (the kicked flag is checked after the last point that can yield, in the
  same step that marks the player `streaming`); once streaming, kick() shuts the socket down.
- Admission as SRS's SrsLiveStream (no on_connect for HTTP players, as SRS 7): security, refer
  (`all`, then `play`, checked against the Referer header: an srsedge addition), the source
  (pinned, so on_play's stream_id is the API's), then on_play with the URL's query as `param`.
  A refusal is 403; on_stop follows an accepted on_play whatever happens next.
- A mount ending in `.ts` serves HTTP-TS the same way (same admission, hooks and edge waits);
  only the body differs: lib/server/http/ts.py's shared muxing instead of the FLV tags. Other
  mount extensions (.aac, .mp3, .m4a) are not served (the config reports them unsupported).
- The socket: `serve_flv` writes the response head and FLV header itself on the connection's
  socket, attaches `Consumer(sock, "flv")` (the source's shared FLV tag bytes, the same fan-out
  as RTMP players), then blocks reading the socket until the player goes (EOF, write error ->
  socket shutdown, or server.stop() shutting down `server.clients`). What that needs from
  pywsgi's internals is in lib/server/http/pywsgi_bridge.py, nowhere else.
  While it plays, the FlvPlayer is in `server.clients` (cid -> player, like RTMP connections).
"""
import email.utils
import functools
import os
import re
import socket

import gevent
from gevent.event import Event

from lib.media import flv
from lib.names import DEFAULT_VHOST, SERVER_NAME as SERVER, stream_key
from lib.rtmp.limits import MAX_NAME, MAX_PARAM, check_request, check_text
from lib.rtmp.url import UrlError, discover, parse_query
from lib.server.core import refer, security
from lib.server.core.errors import SOCKET_ERROR, socket_end
from lib.server.core.consumer import Consumer
from lib.server.core.client import ClientBase
from lib.server.http.static import Response, resolve_path, status_line
from lib.server.http import pywsgi_bridge, ts


MOUNT_EXTENSIONS = (".flv", ".ts")

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?")


@functools.lru_cache(maxsize=256)
def _mount_regex(mount, vhost):
    if not mount.endswith(MOUNT_EXTENSIONS):
        return None
    pattern = mount.replace("[vhost]", vhost).replace(DEFAULT_VHOST + "/", "/")
    if pattern.startswith(vhost + "/"):
        pattern = pattern[len(vhost):]
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    regex = re.escape(pattern)
    regex = regex.replace(re.escape("[app]"), "(?P<app>[^?#]+)", 1)
    regex = regex.replace(re.escape("[stream]"), "(?P<stream>[^/?#]+)", 1)
    return re.compile(regex)


def match_mount(mount, vhost, path):
    """(app, stream) when `path` is vhost `vhost`'s HTTP-FLV `mount`, else None."""
    regex = _mount_regex(mount, vhost)
    m = regex.fullmatch(path) if regex is not None else None
    if m is None:
        return None
    groups = m.groupdict()
    app = groups.get("app") or path.rsplit("/", 1)[0].strip("/")
    stream = groups.get("stream") or path.rsplit("/", 1)[1].rsplit(".", 1)[0]
    if not app or not stream:
        return None
    return app.strip("/"), stream


def request_host(environ):
    """The Host header without its port; "127.0.0.1" when absent; None when malformed."""
    raw = environ.get("HTTP_HOST", "")
    if not raw:
        return "127.0.0.1"
    m = _HOST.fullmatch(raw)
    return m.group(1) if m else None


class FlvPlayer(ClientBase):
    """An HTTP-FLV player: a Client (lib/server/core/client.py) like an RTMP connection."""
    kind = "flv"

    def __init__(self, server, sock, addr, req, vhost_conf, page_url="", kind="flv"):
        super().__init__(server, sock, addr)
        self.kind = kind                # "flv" or "ts"
        self.role = "play"
        self.req = req
        self.vhost_conf = vhost_conf
        self.page_url = page_url
        self._kicked = Event()
        self.streaming = False         # the response started: a kick shuts the socket down

    def play(self, key, head):
        """Hooks, plugins, then serve until the player goes. Returns an error status, or None
        once the stream was served (the response is then on the socket)."""
        ok, reason = security.check(self.vhost_conf.security, "play", self.ip)
        if not ok:
            self.log.warn(f"http-flv play {key}: {reason}")
            return 403
        for action in ("all", "play"):
            ok, reason = refer.check(self.vhost_conf.refer, action, self.page_url)
            if not ok:
                self.log.warn(f"http-{self.kind} play {key} from {self.ip}: {reason}")
                return 403
        server, req = self.server, self.req
        # the source first (pinned), as SRS: on_play's stream_id is the API id of this stream
        with server.sources.pinned(key, self.vhost_conf.name, req.app, req.stream,
                                   self.vhost_conf) as source:
            ok, reason = self.call_hook("on_play")        # owes on_stop from here on
            if not ok:
                self.log.warn(f"http-{self.kind} play {key} from {self.ip}: "
                              f"on_play rejected: {reason}")
                return 403
            try:
                return self._play(key, head, source)
            finally:
                self.settle_all()

    def _play(self, key, head, source):
        server = self.server
        try:
            server.before_play(self, source)
        except Exception as e:  # noqa: BLE001 - a plugin saying "not found"
            self.log.warn(f"http-flv play {key} from {self.ip}: {e}")
            return 404
        self.source = source
        server.clients[self.cid] = self
        try:
            error = self._wait_for_media(source) or self._stream(key, source, head)
            if error is not None:
                self.log.warn(f"http-flv play {key} from {self.ip}: {error} "
                              f"({self.close_reason})")
                return error
        finally:
            consumer = self.drop_consumer()
            if consumer is not None:
                consumer.close()
                if self.kind == "ts":
                    ts.detach(source, consumer)
                else:
                    source.detach(consumer)
            server.clients.pop(self.cid, None)
            server.after_play(self, source)
        return None

    def _wait_for_media(self, source):
        """Hold the answer until the source has media (not published yet, or an edge still
        pulling): None then; 404 if this player is kicked first (edge: not found) or nothing
        came within play.publisher_wait."""
        ready = source.media_ready
        wait = self.vhost_conf.play.publisher_wait
        if not ready.is_set() and not self._kicked.is_set():
            gevent.wait([ready, self._kicked], timeout=wait, count=1)
        if self._kicked.is_set():
            return 404
        if not ready.is_set():
            self.close_reason = f"no media in {wait:g}s"
            return 404
        return None

    def _stream(self, key, source, head):
        """Response head, FLV header, then the shared FLV tags until the player goes.
        Returns 404 when kicked before the response started, else None."""
        if self._kicked.is_set():      # no yield since the wait, none until `streaming`
            return 404
        self.streaming = True
        if self.kind == "ts":
            self.consumer = ts.TsViewer(self.sock, on_error=self._on_consumer_error)
        else:
            self.consumer = Consumer(self.sock, "flv", on_error=self._on_consumer_error,
                                     on_shed=self._on_shed)
        try:
            start = head
            if self.kind == "flv":
                start += flv.file_header(*_has_audio_video(source, self.vhost_conf))
            self.sock.sendall(start)
            self.bytes_sent_direct += len(start)
            self.sock.settimeout(None)
            if self.kind == "ts":
                ts.attach(source, self.consumer)
            else:
                source.attach(self.consumer)
            self.log.trace(f"http-{self.kind} play {key} to {self.ip}:{self.port}")
            while True:
                data = self.sock.recv(4096)
                if not data:
                    break
                self.bytes_in += len(data)
        except OSError as e:
            if not self.kicked and socket_end(e) == SOCKET_ERROR:   # a kick's reason stands
                self.close_reason = f"socket: {e}"
        self.log.trace(f"http-{self.kind} player {self.ip}:{self.port} gone: {self.close_reason}, "
                       f"sent {self.send_bytes} bytes")

    def kick(self, reason, status=None):
        """Close this player from another greenlet (edge: stream not found; API kick).
        Before the response started it becomes a 404; while streaming the stream ends."""
        self.close_reason = reason
        self.log.warn(f"close {self.ip}:{self.port}: {reason}")
        self._kicked.set()
        if self.streaming:
            self._shutdown()

    def _on_shed(self, count):
        self.log.warn(f"player {self.ip}:{self.port} too slow: skipped {count} messages to the "
                      f"newest keyframe (logged once; the API counts every skip)")

    def _on_consumer_error(self, err):
        self.close_reason = f"write failed: {err}"
        self._shutdown()

    def _shutdown(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @property
    def kicked(self):
        return self._kicked.is_set()


def _has_audio_video(source, vhost_conf):
    remux = vhost_conf.http_remux
    if remux.guess_has_av and (source.video_sh or source.audio_sh):
        return source.audio_sh is not None, source.video_sh is not None
    return remux.has_audio, remux.has_video


def _refuse(server, environ, error):
    """A bad name (too long, control characters, unparsable): 400 and one warn line."""
    addr = pywsgi_bridge.client_address(environ)
    ip, port = (addr[0], addr[1]) if isinstance(addr, tuple) else (str(addr), 0)
    server.logger.context().warn(f"close {ip}:{port}: http-flv bad request: {error}")
    raise Response(400) from None


def _is_file(server, path):
    """A regular file of the http_server answers `path` (it is served instead of a stream)."""
    http = getattr(server, "http", None)
    if http is None:
        return False
    try:
        return os.path.isfile(resolve_path(http.root(), path))
    except Response:
        return False


def serve_flv(server, environ, start_response, path, cors_headers):
    """Serve `path` as an HTTP-FLV stream if it is one (returns the WSGI result), else
    None (the caller then looks for a file)."""
    host = request_host(environ)
    if host is None:
        raise Response(400)
    query = environ.get("QUERY_STRING", "")
    values = parse_query(query)
    name = values.get("vhost") or values.get("domain") or host
    vhost_conf = server.config.vhost(host if name == DEFAULT_VHOST else name)
    if vhost_conf is None or not vhost_conf.http_remux.enabled:
        return None
    found = match_mount(vhost_conf.http_remux.mount, vhost_conf.name, path)
    if found is None:
        return None
    app, stream = found
    try:
        check_text("app", app, MAX_NAME)
        check_text("stream", stream, MAX_NAME)
        check_text("query", query, MAX_PARAM)
        req = discover(f"rtmp://{host}/{app}", stream + (f"?{query}" if query else ""))
        check_request(req, stream_needed=True)
    except UrlError as e:
        _refuse(server, environ, e)
    req.vhost = vhost_conf.name    # as RTMP: the matched config vhost from here on
    key = stream_key(req.vhost, req.app, req.stream)   # the names as parsed (lib/rtmp/url.py)
    if not vhost_conf.is_edge:
        source = server.sources.get(key)
        if (source is None or source.publisher is None) and _is_file(server, path):
            return None            # a file of that name
    kind = "ts" if path.endswith(".ts") else "flv"
    headers = [("Content-Type", ts.CONTENT_TYPE if kind == "ts" else "video/x-flv"), ("Server", SERVER),
               ("Date", email.utils.formatdate(usegmt=True)),
               ("Cache-Control", "no-store"), ("Connection", "close")]
    headers += cors_headers
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    head = f"HTTP/1.1 {status_line(200)}\r\n{head}\r\n".encode("latin-1")
    if environ["REQUEST_METHOD"] == "HEAD":
        pywsgi_bridge.raw_socket(environ).sendall(head)
    else:
        player = FlvPlayer(server, pywsgi_bridge.raw_socket(environ),
                           pywsgi_bridge.client_address(environ), req, vhost_conf,
                           environ.get("HTTP_REFERER", ""), kind)
        error = player.play(key, head)
        if error is not None:
            pywsgi_bridge.release_socket(environ)
            if player.kicked:
                pywsgi_bridge.close_after(environ)    # kicked: no keep-alive after the 404
            raise Response(error)
    return pywsgi_bridge.written_by_app(environ, start_response, status_line(200), headers)
