"""The HTTP server (`http_server`): static files (HLS output) and HTTP-FLV live streams.

Rules (this module owns them):
- gevent.pywsgi, started by `start_http(server)` when `http_server.enabled`. Config values
  (`dir`, `crossdomain`, vhosts) are read per request, so a reload applies; `listen` needs a
  restart.
- Static files under `http_server.dir`: GET and HEAD (others 405; OPTIONS is the CORS preflight
  when `crossdomain on`), MIME type by extension, Content-Length, Last-Modified/ETag with 304,
  one byte range (206 + Content-Range, 416 when unsatisfiable; several ranges: whole file).
  Cache-Control as lib/server/http/static.py says (`.m3u8` `max-age=1`, `.ts` a year).
- Path safety: PATH_INFO is percent-decoded once (so `%2e%2e` is `..`, and `%252e` stays a
  literal name). A path with NUL, backslash or a `..` segment is 403; hidden (`.name`)
  segments are 404; the file's realpath must lie under the root's realpath (symlinks out: 403);
  only regular files are opened (O_NOFOLLOW|O_NONBLOCK, so a FIFO cannot block). Nothing
  outside the root is read.
- Files are sent in CHUNK pieces from an iterator that yields to the hub after each piece.
- HLS files (.m3u8, .ts, ...) written by a vhost's HLS are served only when that vhost's
  `security` allows `play` from the client's address, else 403 and one warn line; the vhost is
  found from the file's path and the vhosts' hls_path/hls_m3u8_file/hls_ts_file
  (lib/server/hls/access.py). Behind a proxy (the nginx tier) the address is the proxy's.
- Requests: the request line is capped by pywsgi (MAX_REQUEST_LINE, 414); headers here
  (MAX_HEADER_BYTES / MAX_HEADERS, 431); the request head (and keep-alive idle time) must
  arrive within HEAD_TIMEOUT (408, slowloris guard); a stuck send fails after SEND_TIMEOUT.
- Logging: no access log; only errors (and, like RTMP plays, a trace line when an HTTP-FLV
  play starts and one when it ends).
- `server.http_stats`: when a test sets it to a dict, every request adds one to its PATH_INFO.

- What `http_server.dir` does not have (404) may be a built-in page: the landing page `/`,
  `/players/`, `/console/` (lib/server/http/pages.py); files in the dir override them.

Static files: lib/server/http/static.py. HTTP-FLV: lib/server/http/flv.py.
"""
import io
import os
import re
import socket

import gevent
from gevent import pywsgi

from lib.names import SERVER_NAME as SERVER
from lib.server.http import listener, pywsgi_bridge
from lib.server.http.flv import MOUNT_EXTENSIONS, match_mount, serve_flv  # noqa: F401 (match_mount: tests)
from lib.server.http.pages import serve_page
from lib.server.http.static import (Response, parse_range, path_parts, resolve_path,  # noqa: F401
                                    serve_file, status_line)
from lib.server.cluster.hls_proxy import serve_from_owner
from lib.server.hls.access import HlsAccess

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 64
HEAD_TIMEOUT = 30.0
SEND_TIMEOUT = 30.0

CORS_HEADERS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
    ("Access-Control-Allow-Headers",
     "Origin, Range, Accept-Encoding, Referer, Cache-Control, Content-Type, X-Requested-With"),
    ("Access-Control-Expose-Headers",
     "Server, Content-Length, Content-Range, Accept-Ranges, ETag"),
]


class HeadersTooLarge(ValueError):
    """More than MAX_HEADER_BYTES or MAX_HEADERS of request headers."""


class HeadTimeout(socket.timeout):
    """The request head did not arrive within HEAD_TIMEOUT."""


def _raw_response(status):
    return f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode()


class _Handler(pywsgi.WSGIHandler):
    """pywsgi's handler with header limits, a head timeout and the socket in the environ
    (lib/server/http/pywsgi_bridge.py)."""

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
        pywsgi_bridge.expose(self, env)
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


# ------------------------------------------------------------------ the server
class HttpServer:
    """The WSGI application and its pywsgi listener."""

    def __init__(self, server):
        self.server = server
        self.log = server.logger.context("http")
        self._dir = None
        self._root = None
        self.wsgi = None
        self.tls_wsgi = None
        self.hls_access = HlsAccess(server)

    def start(self):
        """Listen on http_server.listen (and https.listen when enabled): the endpoints."""
        conf = self.server.config.http_server
        host, port = conf.listen
        self.wsgi = listener.listen(self, (host or "0.0.0.0", port), _Handler,
                                    _ErrorLog(self.log))
        endpoints = [f"http://{host or '0.0.0.0'}:{self.wsgi.server_port}"]
        if conf.https.enabled:
            host, port = conf.https.listen
            self.tls_wsgi = listener.listen(self, (host or "0.0.0.0", port), _Handler,
                                            _ErrorLog(self.log), conf.https, "http_server.https")
            endpoints.append(f"https://{host or '0.0.0.0'}:{self.tls_wsgi.server_port}")
        return endpoints

    @property
    def port(self):
        return self.wsgi.server_port

    @property
    def tls_port(self):
        """The HTTPS server's port, None without one."""
        return self.tls_wsgi.server_port if self.tls_wsgi is not None else None

    def close(self):
        for wsgi in (self.wsgi, self.tls_wsgi):
            if wsgi is not None:
                wsgi.close()

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
            start_response(status_line(r.status), headers)
            return [r.body] if environ["REQUEST_METHOD"] != "HEAD" else []
        except Exception as e:  # noqa: BLE001 - one bad request must not kill the server
            self.log.error(f"http {environ['REQUEST_METHOD']} {environ['PATH_INFO']!r}: {e!r}")
            pywsgi_bridge.close_after(environ)
            start_response(status_line(500), [("Content-Length", "0"), ("Server", SERVER)])
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
        if path.endswith(MOUNT_EXTENSIONS):   # a live HTTP-FLV/TS mount, else a file
            result = serve_flv(self.server, environ, start_response, path, CORS_HEADERS if cors else [])
            if result is not None:
                return result
        root = self.root()
        ok, reason = self.hls_access.check_play(resolve_path(root, path), environ["REMOTE_ADDR"])
        if not ok:
            self.log.warn(f"http {path}: {reason}")
            raise Response(403)
        try:
            return serve_file(environ, start_response, root, path, CORS_HEADERS if cors else [])
        except Response as r:
            if r.status != 404:
                raise
        result = serve_from_owner(self.server, self.hls_access, environ, start_response,
                                  resolve_path(root, path), path, CORS_HEADERS if cors else [])
        if result is not None:
            return result
        return serve_page(self.server, environ, start_response, path, CORS_HEADERS if cors else [])


def start_http(server):
    """Start the HTTP server when `http_server.enabled`; it is then `server.http`.
    Returns the endpoint strings (none when disabled)."""
    if not server.config.http_server.enabled:
        return []
    http = HttpServer(server)
    server.http = http
    try:
        return http.start()
    except BaseException:
        http.close()
        raise


__all__ = ["start_http", "HttpServer"]
