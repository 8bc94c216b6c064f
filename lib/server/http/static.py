"""Static files for the HTTP server: paths, ranges, conditional requests, MIME types.

Rules (this module owns them):
- GET and HEAD of regular files under a root; MIME type by extension, Content-Length,
  Last-Modified/ETag with 304, one byte range (206 + Content-Range, 416 when unsatisfiable;
  several ranges: whole file).
- Cache-Control: `.m3u8` `max-age=1`: a player or cache may reuse a playlist for one second
  (a cache that counts whole seconds, like nginx's, for up to two); not `no-cache`, so a cache
  that honours it still shares one origin fetch among its viewers. The shipped nginx tier
  ignores it and keys playlists by the current second (nginx/README.md). `.ts`
  and `.m4s` `max-age=31536000, immutable`: the HLS writer never reuses a segment name while it runs; a
  restarted origin starts [seq] again, so names that must stay unique across restarts need
  [timestamp] in hls_ts_file (the shipped configs have it). Anything else `no-cache`
  (revalidate with the ETag).
- Path safety: a path with NUL, backslash or a `..` segment is 403; hidden (`.name`) segments are
  404; the file's realpath must lie under the root's realpath (symlinks out: 403); only regular
  files are opened (O_NOFOLLOW|O_NONBLOCK, so a FIFO cannot block). Nothing outside the root is read.
- Files are sent in CHUNK pieces from an iterator that yields to the hub after each piece.
"""
import email.utils
import os
import stat

import gevent

from lib.names import SERVER_NAME as SERVER
from lib.server.http import pywsgi_bridge

CHUNK = 64 * 1024

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
CACHE_CONTROL = {".m3u8": "max-age=1", ".ts": "max-age=31536000, immutable",
                 ".m4s": "max-age=31536000, immutable"}
DEFAULT_CACHE_CONTROL = "no-cache"

_REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 301: "Moved Permanently", 304: "Not Modified",
            400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            416: "Range Not Satisfiable", 500: "Internal Server Error", 504: "Gateway Timeout"}


class Response(Exception):
    """A short answer: status, extra headers, small body."""

    def __init__(self, status, headers=(), body=b""):
        super().__init__(status)
        self.status, self.headers, self.body = status, list(headers), body


def status_line(code):
    return f"{code} {_REASONS.get(code, 'Unknown')}"


class _FileBody:
    """The bytes [offset, offset+length) of an open file, CHUNK at a time, yielding to the hub."""

    def __init__(self, f, offset, length, environ):
        self.f, self.offset, self.length, self.environ = f, offset, length, environ

    def __iter__(self):
        f, left = self.f, self.length
        f.seek(self.offset)
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:               # truncated under us: the body is short, so close
                pywsgi_bridge.close_after(self.environ)
                return
            left -= len(data)
            yield data
            gevent.sleep(0)

    def close(self):
        self.f.close()


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


def serve_file(environ, start_response, root, path, cors_headers):
    real = resolve_path(root, path)
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
        status, headers, offset, length = file_headers(environ, real, st)
    except BaseException:
        f.close()
        raise
    headers += cors_headers
    start_response(status_line(status), headers)
    if environ["REQUEST_METHOD"] == "HEAD" or length == 0:
        f.close()
        return []
    return _FileBody(f, offset, length, environ)

def file_headers(environ, real, st):
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
