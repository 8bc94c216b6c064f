"""HTTP-FLV (`vhost.http_remux`, SRS semantics): mounts, the player, the response.

Rules (this module owns them):
- The vhost is `?vhost=`/`?domain=` else the Host header (config fallback to `__defaultVhost__`);
  its `mount` with `[vhost]` replaced, and `__defaultVhost__/` or a leading `<vhost>/` (the Host
  already chose it) removed, is matched against the path with `[app]` (may hold slashes) and
  `[stream]` (one segment). A mount without `[vhost]` (`[app]/[stream].flv`) therefore serves
  every Host that maps to its vhost.
- Not an edge and no publisher: the static file of that name if any, else 404 at once.
  An edge vhost: the plugins decide. `before_play` raising means 404; otherwise the answer
  waits until the source has media (the edge's pull started), and the edge calling
  `player.kick()` first (not found on any origin) means 404; no media in FLV_WAIT_TIMEOUT 504.
- on_play hook rejects with 403; on_stop follows an accepted on_play whatever happens next.
- The socket trick: pywsgi never gives the app its socket, so the server's handler puts it (and
  itself) in the environ (`srsedge.socket`, `srsedge.handler`). `serve_flv` writes the response
  head and FLV header itself, attaches `Consumer(sock, "flv")` (the source's shared FLV tag
  bytes, the same fan-out as RTMP players), then blocks reading the socket until the player goes
  (EOF, write error -> socket shutdown, or server.stop() shutting down `server.clients`). Then
  it calls start_response only to record the status, and sets `headers_sent` and
  `close_connection` on the handler, returning []: pywsgi writes nothing more and closes.
  While it plays, the FlvPlayer is in `server.clients` (cid -> player, like RTMP connections).
"""
import email.utils
import functools
import re
import socket
import time

from gevent.event import Event

from lib.media import flv
from lib.names import DEFAULT_VHOST, SERVER_NAME as SERVER
from lib.rtmp.url import UrlError, discover, parse_query
from lib.server.core import security
from lib.server.core.errors import SOCKET_ERROR, socket_end
from lib.server.core.consumer import Consumer
from lib.server.core.hooks import HookContext
from lib.server.http.static import Response, status_line

FLV_WAIT_TIMEOUT = 30.0      # an edge's first media, before answering 504

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?")


@functools.lru_cache(maxsize=256)
def _mount_regex(mount, vhost):
    if not mount.endswith(".flv"):
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
    stream = groups.get("stream") or path.rsplit("/", 1)[1][:-len(".flv")]
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


class FlvPlayer:
    """An HTTP-FLV player: what plugins (edge), hooks and `server.clients` need to know,
    with the same names as RtmpConnection (req, vhost_conf, log, cid, ip, sock, role...)."""
    role = "play"
    kind = "flv"

    def __init__(self, server, sock, addr, req, vhost_conf, page_url=""):
        self.server = server
        self.sock = sock
        self.ip, self.port = (addr[0], addr[1]) if isinstance(addr, tuple) else (str(addr), 0)
        self.req = req
        self.vhost_conf = vhost_conf
        self.page_url = page_url
        self.log = server.logger.context()
        self.cid = self.log.cid
        self.source = None
        self.consumer = None
        self.created = time.time()
        self.bytes_in = 0
        self.close_reason = "client closed"
        self._kicked = Event()

    def hook(self, action, urls):
        req = self.req
        ctx = HookContext(
            client_id=self.cid, ip=self.ip, vhost=req.vhost, app=req.app, stream=req.stream,
            param=req.param, tc_url=req.tc_url, page_url=self.page_url,
            server_id=self.server.server_id, service_id=self.server.service_id,
            stream_id=self.server.stream_id(req),
            send_bytes=self.consumer.bytes_out if self.consumer else 0, recv_bytes=self.bytes_in)
        return self.server.hooks.call(action, urls, ctx)

    def play(self, key, head):
        """Hooks, plugins, then serve until the player goes. Returns an error status, or None
        once the stream was served (the response is then on the socket)."""
        ok, reason = security.check(self.vhost_conf.security, "play", self.ip)
        if not ok:
            self.log.warn(f"http-flv play {key}: {reason}")
            return 403
        hooks = self.vhost_conf.http_hooks
        if hooks.enabled and hooks.on_play:
            ok, reason = self.hook("on_play", hooks.on_play)
            if not ok:
                self.log.warn(f"http-flv play {key} from {self.ip}: on_play rejected: {reason}")
                return 403
        try:
            return self._play(key, head)
        finally:
            if hooks.enabled and hooks.on_play and hooks.on_stop:
                ok, reason = self.hook("on_stop", hooks.on_stop)
                if not ok:
                    self.log.warn(f"on_stop failed (ignored): {reason}")

    def _play(self, key, head):
        server, req = self.server, self.req
        source = server.sources.fetch_or_create(key, self.vhost_conf.name, req.app, req.stream,
                                                self.vhost_conf)
        try:
            server.before_play(self, source)
        except Exception as e:  # noqa: BLE001 - a plugin saying "not found"
            self.log.warn(f"http-flv play {key} from {self.ip}: {e}")
            server.sources.maybe_remove(source)
            return 404
        self.source = source
        server.clients[self.cid] = self
        try:
            error = self._wait_for_media(source)
            if error is not None:
                self.log.warn(f"http-flv play {key} from {self.ip}: {error} ({self.close_reason})")
                return error
            self.consumer = Consumer(self.sock, "flv", on_error=self._on_consumer_error)
            self._stream(key, source, head)
        finally:
            if self.consumer is not None:
                self.consumer.close()
                source.detach(self.consumer)
            server.clients.pop(self.cid, None)
            server.after_play(self, source)
            if self.consumer is None:
                server.sources.maybe_remove(source)
        return None

    def _wait_for_media(self, source):
        """Hold the answer until the source has media (an edge is still pulling): None then;
        404 if this player is kicked first (edge: not found), 504 after FLV_WAIT_TIMEOUT."""
        deadline = time.monotonic() + FLV_WAIT_TIMEOUT
        while not (source.video_sh or source.audio_sh or source.metadata or source.gop.items):
            if self._kicked.is_set():
                return 404
            if time.monotonic() > deadline:
                self.close_reason = f"no media in {FLV_WAIT_TIMEOUT:g}s"
                return 504
            self._kicked.wait(0.05)
        return 404 if self._kicked.is_set() else None

    def _stream(self, key, source, head):
        """Response head, FLV header, then the shared FLV tags until the player goes."""
        try:
            self.sock.sendall(head + flv.file_header(*_has_audio_video(source, self.vhost_conf)))
            self.sock.settimeout(None)
            source.attach(self.consumer)
            self.log.trace(f"http-flv play {key} to {self.ip}:{self.port}")
            while True:
                data = self.sock.recv(4096)
                if not data:
                    break
                self.bytes_in += len(data)
        except OSError as e:
            if socket_end(e) == SOCKET_ERROR:
                self.close_reason = f"socket: {e}"
        self.log.trace(f"http-flv player {self.ip}:{self.port} gone: {self.close_reason}, "
                       f"sent {self.consumer.bytes_out} bytes")

    def kick(self, reason, status=None):
        """Close this player from another greenlet (edge: stream not found; API kick).
        Before the response started it becomes a 404; while streaming the stream ends."""
        self.close_reason = reason
        self.log.warn(f"close {self.ip}:{self.port}: {reason}")
        self._kicked.set()
        if self.consumer is not None:
            self._shutdown()

    def _on_consumer_error(self, err):
        self.close_reason = f"write failed: {err}"
        self._shutdown()

    def _shutdown(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _has_audio_video(source, vhost_conf):
    remux = vhost_conf.http_remux
    if remux.guess_has_av and (source.video_sh or source.audio_sh):
        return source.audio_sh is not None, source.video_sh is not None
    return remux.has_audio, remux.has_video


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
    key = f"{vhost_conf.name}/{app}/{stream}"
    if not vhost_conf.is_edge:
        source = server.sources.get(key)
        if source is None or source.publisher is None:
            return None            # a file of that name, else 404
    headers = [("Content-Type", "video/x-flv"), ("Server", SERVER),
               ("Date", email.utils.formatdate(usegmt=True)),
               ("Cache-Control", "no-store"), ("Connection", "close")]
    headers += cors_headers
    handler = environ["srsedge.handler"]
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    head = f"HTTP/1.1 {status_line(200)}\r\n{head}\r\n".encode("latin-1")
    if environ["REQUEST_METHOD"] == "HEAD":
        environ["srsedge.socket"].sendall(head)
    else:
        try:
            req = discover(f"rtmp://{host}/{app}", stream + (f"?{query}" if query else ""))
        except UrlError:
            raise Response(400) from None
        player = FlvPlayer(server, environ["srsedge.socket"], handler.client_address, req,
                           vhost_conf, environ.get("HTTP_REFERER", ""))
        error = player.play(key, head)
        if error is not None:
            raise Response(error)
    # The response went out on the socket: record it for pywsgi, which must send nothing.
    start_response(status_line(200), headers)
    handler.headers_sent = True
    handler.close_connection = True
    return []
