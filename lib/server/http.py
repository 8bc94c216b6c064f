"""The HTTP server (`http_server`): static files (HLS output) and HTTP-FLV live streams.

Rules (this module owns them):
- gevent.pywsgi, started by `start_http(server)` when `http_server.enabled`. Config values
  (`dir`, `crossdomain`, vhosts) are read per request, so a reload applies; `listen` needs a
  restart.
- Static files under `http_server.dir`: GET and HEAD (others 405; OPTIONS is the CORS preflight
  when `crossdomain on`), MIME type by extension, Content-Length, Last-Modified/ETag with 304,
  one byte range (206 + Content-Range, 416 when unsatisfiable; several ranges: whole file).
  Cache-Control: `.m3u8` `max-age=1` (not `no-cache`: nginx honours the origin's Cache-Control
  over its own proxy_cache_valid, and no-cache would send every viewer's playlist poll to the
  origin; one second is well under one fragment, so no cache serves a playlist more than a
  second stale); `.ts` `max-age=31536000, immutable` (the HLS writer never reuses a segment
  name); anything else `no-cache` (revalidate with the ETag).
- Path safety: PATH_INFO is percent-decoded once (so `%2e%2e` is `..`, and `%252e` stays a
  literal name). A path with NUL, backslash or a `..` segment is 403; hidden (`.name`)
  segments are 404; the file's realpath must lie under the root's realpath (symlinks out: 403);
  only regular files are opened (O_NOFOLLOW|O_NONBLOCK, so a FIFO cannot block). Nothing
  outside the root is read.
- Files are sent in CHUNK pieces from an iterator that yields to the hub after each piece.
- Requests: the request line is capped by pywsgi (MAX_REQUEST_LINE, 414); headers here
  (MAX_HEADER_BYTES / MAX_HEADERS, 431); the request head (and keep-alive idle time) must
  arrive within HEAD_TIMEOUT (408, slowloris guard); a stuck send fails after SEND_TIMEOUT.
- Logging: no access log; only errors (and, like RTMP plays, a trace line when an HTTP-FLV
  play starts and one when it ends).
- `server.http_stats`: when a test sets it to a dict, every request adds one to its PATH_INFO.

HTTP-FLV (`vhost.http_remux`, SRS semantics): the vhost is `?vhost=`/`?domain=` else the Host
header (config fallback to `__defaultVhost__`); its `mount` with `[vhost]` replaced, and
`__defaultVhost__/` or a leading `<vhost>/` (the Host already chose it) removed, is matched
against the path with `[app]` (may hold slashes) and `[stream]` (one segment). A mount without
`[vhost]` (`[app]/[stream].flv`) therefore serves every Host that maps to its vhost.
- Not an edge and no publisher: the static file of that name if any, else 404 at once.
  An edge vhost: the plugins decide. `before_play` raising means 404; otherwise the answer
  waits until the source has media (the edge's pull started), and the edge calling
  `player.kick()` first (not found on any origin) means 404; no media in FLV_WAIT_TIMEOUT 504.
- on_play hook rejects with 403; on_stop follows an accepted on_play whatever happens next.
- The socket trick: pywsgi never gives the app its socket, so `_Handler` puts it (and itself)
  in the environ (`srsedge.socket`, `srsedge.handler`). The FLV app writes the response head
  and FLV header itself, attaches `Consumer(sock, "flv")` (the source's shared FLV tag bytes,
  the same fan-out as RTMP players), then blocks reading the socket until the player goes
  (EOF, write error -> socket shutdown, or server.stop() shutting down `server.clients`).
  Then it calls start_response only to record the status, and sets `headers_sent` and
  `close_connection` on the handler, returning []: pywsgi writes nothing more and closes.
  While it plays, the FlvPlayer is in `server.clients` (cid -> player, like RTMP connections).
"""
import email.utils
import functools
import io
import os
import re
import socket
import stat
import time

import gevent
from gevent import pywsgi
from gevent.event import Event

from lib.media import flv
from lib.rtmp.session import VERSION
from lib.rtmp.url import DEFAULT_VHOST, UrlError, discover, parse_query
from lib.server import security
from lib.server.hooks import HookContext
from lib.server.source import Consumer

CHUNK = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 64
HEAD_TIMEOUT = 30.0
SEND_TIMEOUT = 30.0
FLV_WAIT_TIMEOUT = 30.0      # an edge's first media, before answering 504
SERVER = f"srsedge/{VERSION}"

MIME_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".flv": "video/x-flv",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".m4a": "audio/mp4",
    ".m4v": "video/mp4",
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",
    ".webm": "video/webm",
    ".mpd": "application/dash+xml",
    ".key": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".wasm": "application/wasm",
}
DEFAULT_MIME = "application/octet-stream"
CACHE_CONTROL = {".m3u8": "max-age=1", ".ts": "max-age=31536000, immutable"}
DEFAULT_CACHE_CONTROL = "no-cache"

CORS_HEADERS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
    ("Access-Control-Allow-Headers",
     "Origin, Range, Accept-Encoding, Referer, Cache-Control, Content-Type, X-Requested-With"),
    ("Access-Control-Expose-Headers",
     "Server, Content-Length, Content-Range, Accept-Ranges, ETag"),
]
_REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 304: "Not Modified",
            400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            416: "Range Not Satisfiable", 500: "Internal Server Error", 504: "Gateway Timeout"}
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?")


class HeadersTooLarge(ValueError):
    """More than MAX_HEADER_BYTES or MAX_HEADERS of request headers."""


class HeadTimeout(socket.timeout):
    """The request head did not arrive within HEAD_TIMEOUT."""


def _raw_response(status):
    return f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode()


class _Handler(pywsgi.WSGIHandler):
    """pywsgi's handler with header limits, a head timeout and the socket in the environ."""

    def handle(self):
        self.socket.settimeout(SEND_TIMEOUT)
        super().handle()

    def handle_one_request(self):
        self._head_timer = gevent.Timeout.start_new(HEAD_TIMEOUT, HeadTimeout("request head"))
        try:
            return super().handle_one_request()
        finally:
            self._head_timer.close()

    def MessageClass(self, fp, *args):
        lines, size = [], 0
        while True:
            line = fp.readline(MAX_HEADER_BYTES + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            lines.append(line)
            size += len(line)
            if size > MAX_HEADER_BYTES or len(lines) > MAX_HEADERS:
                raise HeadersTooLarge(f"request headers over {MAX_HEADER_BYTES} bytes "
                                      f"or {MAX_HEADERS} lines")
        return pywsgi.headers_factory(io.BytesIO(b"".join(lines) + b"\r\n"))

    def _handle_client_error(self, ex):
        if isinstance(ex, HeadersTooLarge):
            return "431", _raw_response("431 Request Header Fields Too Large")
        if isinstance(ex, socket.timeout):
            return "408", _raw_response("408 Request Timeout")
        return super()._handle_client_error(ex)

    def get_environ(self):
        self._head_timer.close()       # the head is in: the application runs untimed
        env = super().get_environ()
        env["srsedge.socket"] = self.socket
        env["srsedge.handler"] = self
        return env


class _ErrorLog:
    """pywsgi's error_log (bad requests): one warn line each through the server's logger."""

    def __init__(self, log):
        self.log = log

    def write(self, msg):
        msg = msg.strip()
        if msg:
            self.log.warn(f"http: {msg}")

    def flush(self):
        pass


class Response(Exception):
    """A short answer: status, extra headers, small body."""

    def __init__(self, status, headers=(), body=b""):
        super().__init__(status)
        self.status, self.headers, self.body = status, list(headers), body


def _status_line(code):
    return f"{code} {_REASONS.get(code, 'Unknown')}"


class _FileBody:
    """The bytes [offset, offset+length) of an open file, CHUNK at a time, yielding to the hub."""

    def __init__(self, f, offset, length, handler):
        self.f, self.offset, self.length, self.handler = f, offset, length, handler

    def __iter__(self):
        f, left = self.f, self.length
        f.seek(self.offset)
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:               # truncated under us: the body is short, so close
                if self.handler is not None:
                    self.handler.close_connection = True
                return
            left -= len(data)
            yield data
            gevent.sleep(0)

    def close(self):
        self.f.close()


# ------------------------------------------------------------------ paths, ranges, mounts
def path_parts(path):
    """The segments of a decoded request path; Response(403) for NUL, backslash or `..`,
    Response(404) for hidden (`.name`) segments. No filesystem access."""
    if "\x00" in path or "\\" in path:
        raise Response(403)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Response(403)
    if any(p.startswith(".") for p in parts):
        raise Response(404)
    return parts


def resolve_path(root, path):
    """The real path of the file `path` names under `root` (a realpath), per path_parts;
    Response(403) when it resolves (symlinks) outside the root."""
    full = os.path.join(root, *path_parts(path))
    if os.path.isdir(full):
        full = os.path.join(full, "index.html")
    real = os.path.realpath(full)
    if os.path.commonpath([root, real]) != root:
        raise Response(403)
    return real


def parse_range(header, size):
    """One `bytes=` range -> (first, last) inclusive; None to ignore the header (bad syntax,
    several ranges); "unsatisfiable" when it selects nothing of `size` bytes."""
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or not dash or "," in spec:
        return None
    if not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(int(last), size - 1) if last else size - 1


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


def _request_host(environ):
    """The Host header without its port; "127.0.0.1" when absent; None when malformed."""
    raw = environ.get("HTTP_HOST", "")
    if not raw:
        return "127.0.0.1"
    m = _HOST.fullmatch(raw)
    return m.group(1) if m else None


# ------------------------------------------------------------------ HTTP-FLV player
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


# ------------------------------------------------------------------ the server
class HttpServer:
    """The WSGI application and its pywsgi listener."""

    def __init__(self, server):
        self.server = server
        self.log = server.logger.context("http")
        self._dir = None
        self._root = None
        self.wsgi = None

    def start(self):
        host, port = self.server.config.http_server.listen
        self.wsgi = pywsgi.WSGIServer((host or "0.0.0.0", port), self, backlog=1024,
                                      handler_class=_Handler, log=None,
                                      error_log=_ErrorLog(self.log))
        self.wsgi.init_socket()
        self.wsgi.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.wsgi.start()
        return f"http://{host or '0.0.0.0'}:{self.wsgi.server_port}"

    @property
    def port(self):
        return self.wsgi.server_port

    def close(self):
        if self.wsgi is not None:
            self.wsgi.close()

    def root(self):
        d = self.server.config.http_server.dir
        if d != self._dir:
            self._dir, self._root = d, os.path.realpath(d)
        return self._root

    # ------------------------------------------------------------ WSGI entry
    def __call__(self, environ, start_response):
        stats = getattr(self.server, "http_stats", None)
        if stats is not None:
            stats[environ["PATH_INFO"]] = stats.get(environ["PATH_INFO"], 0) + 1
        cors = self.server.config.http_server.crossdomain
        try:
            return self._serve(environ, start_response, cors)
        except Response as r:
            headers = [("Content-Type", "text/plain; charset=utf-8"),
                       ("Content-Length", str(len(r.body))), ("Server", SERVER), *r.headers]
            if cors:
                headers += CORS_HEADERS
            start_response(_status_line(r.status), headers)
            return [r.body] if environ["REQUEST_METHOD"] != "HEAD" else []
        except Exception as e:  # noqa: BLE001 - one bad request must not kill the server
            self.log.error(f"http {environ['REQUEST_METHOD']} {environ['PATH_INFO']!r}: {e!r}")
            environ["srsedge.handler"].close_connection = True
            start_response(_status_line(500), [("Content-Length", "0"), ("Server", SERVER)])
            return []

    def _serve(self, environ, start_response, cors):
        method = environ["REQUEST_METHOD"]
        path = environ["PATH_INFO"]
        try:
            path = path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise Response(400) from None
        if not path.startswith("/"):
            path = re.sub(r"^https?://[^/]*", "", path)    # absolute-form request target
            if not path.startswith("/"):
                raise Response(400)
        allow = "GET, HEAD, OPTIONS" if cors else "GET, HEAD"
        if method == "OPTIONS" and cors:
            raise Response(204, [("Allow", allow), ("Access-Control-Max-Age", "86400")])
        if method not in ("GET", "HEAD"):
            raise Response(405, [("Allow", allow)])
        path_parts(path)               # the same path rules for streams as for files
        if path.endswith(".flv"):
            result = self._flv(environ, start_response, path, cors)
            if result is not None:
                return result
        return self._file(environ, start_response, path, cors)

    # ------------------------------------------------------------ static files
    def _file(self, environ, start_response, path, cors):
        real = resolve_path(self.root(), path)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except PermissionError:
            raise Response(403) from None
        except OSError:
            raise Response(404) from None
        f = os.fdopen(fd, "rb")
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Response(404)
            status, headers, offset, length = self._file_headers(environ, real, st)
        except BaseException:
            f.close()
            raise
        if cors:
            headers += CORS_HEADERS
        start_response(_status_line(status), headers)
        if environ["REQUEST_METHOD"] == "HEAD" or length == 0:
            f.close()
            return []
        return _FileBody(f, offset, length, environ.get("srsedge.handler"))

    def _file_headers(self, environ, real, st):
        """(status, headers, offset, length) for a GET/HEAD of a regular file."""
        ext = os.path.splitext(real)[1].lower()
        size = st.st_size
        etag = f'"{st.st_mtime_ns:x}-{size:x}"'
        headers = [("Server", SERVER),
                   ("Content-Type", MIME_TYPES.get(ext, DEFAULT_MIME)),
                   ("Cache-Control", CACHE_CONTROL.get(ext, DEFAULT_CACHE_CONTROL)),
                   ("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True)),
                   ("ETag", etag), ("Accept-Ranges", "bytes")]
        if _not_modified(environ, etag, st.st_mtime):
            return 304, headers, 0, 0
        wanted = environ.get("HTTP_RANGE")
        if_range = environ.get("HTTP_IF_RANGE")
        rng = parse_range(wanted, size) if wanted and if_range in (None, etag) else None
        if rng == "unsatisfiable":
            raise Response(416, [("Content-Range", f"bytes */{size}")])
        if rng is None:
            return 200, headers + [("Content-Length", str(size))], 0, size
        first, last = rng
        headers += [("Content-Range", f"bytes {first}-{last}/{size}"),
                    ("Content-Length", str(last - first + 1))]
        return 206, headers, first, last - first + 1

    # ------------------------------------------------------------ HTTP-FLV
    def _flv(self, environ, start_response, path, cors):
        """Serve `path` as an HTTP-FLV stream if it is one (returns the WSGI result), else
        None (the caller then looks for a file)."""
        server = self.server
        host = _request_host(environ)
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
        if cors:
            headers += CORS_HEADERS
        handler = environ["srsedge.handler"]
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        head = f"HTTP/1.1 {_status_line(200)}\r\n{head}\r\n".encode("latin-1")
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
        start_response(_status_line(200), headers)
        handler.headers_sent = True
        handler.close_connection = True
        return []


def _not_modified(environ, etag, mtime):
    inm = environ.get("HTTP_IF_NONE_MATCH")
    if inm is not None:
        tags = [t.strip() for t in inm.split(",")]
        return "*" in tags or etag in tags or f"W/{etag}" in tags
    ims = environ.get("HTTP_IF_MODIFIED_SINCE")
    if ims:
        try:
            since = email.utils.parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return int(mtime) <= since
    return False


def start_http(server):
    """Start the HTTP server when `http_server.enabled`; it is then `server.http`.
    Returns the endpoint strings (none when disabled)."""
    if not server.config.http_server.enabled:
        return []
    http = HttpServer(server)
    endpoint = http.start()
    server.http = http
    return [endpoint]


__all__ = ["start_http", "HttpServer", "FlvPlayer", "resolve_path", "parse_range",
           "match_mount", "path_parts", "MIME_TYPES"]
