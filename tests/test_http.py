"""HTTP server: static files (MIME, HEAD, ranges, 304, CORS, cache headers), path safety,
request limits; plus `ServerThread`, the in-process harness the HTTP-FLV and nginx tests share.

Rules: the server runs in its own thread with its own gevent hub (no monkey-patching of the
pytest process), on port 0; tests talk to it with blocking clients (requests, raw sockets).
"""
import hashlib
import os
import socket
import threading

import gevent
import pytest
import requests

import lib.server.http.server as http
from lib.config import parse_text
from lib.server.core.app import Server
from lib.server.http.server import match_mount, parse_range
from lib.server.process.log import Logger

SECRET = b"TOPSECRET-do-not-serve"


class ServerThread:
    """A Server (RTMP, http_server, http_api) in a thread of its own (its own gevent hub)."""

    def __init__(self, conf_text, plugins=(), stats=False):
        self.config = parse_text(conf_text)
        self.plugins = list(plugins)
        self.stats = stats
        self.server = None
        self.error = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("server thread did not start")
        if self.error is not None:
            raise self.error
        return self

    def _run(self):
        try:
            self.server = Server(self.config, Logger("console", "warn"))
            self.server.plugins.extend(self.plugins)
            if self.stats:
                self.server.http_stats = {}
            self.rtmp_endpoints = self.server.start()      # starts http_server too
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            self.error = e
            self._ready.set()
            return
        self._ready.set()
        while not self._stopping.is_set():
            gevent.sleep(0.05)
        self.server.stop()
        self.server.http.wsgi.stop(timeout=1)

    def stop(self):
        self._stopping.set()
        self._thread.join(10)

    @property
    def rtmp_port(self):
        return self.server.rtmp_ports[0]

    @property
    def http_port(self):
        return self.server.http.port

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"


def raw_request(port, data, timeout=5.0):
    """Send raw bytes, read until the server closes: (status, headers dict, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
    resp = b"".join(chunks)
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0] else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return status, headers, body


def get(port, target, headers=""):
    return raw_request(port, f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                             f"{headers}\r\n".encode("latin-1"))


TS_BODY = bytes(range(256)) * 40                     # 10240 bytes
FILES = {
    "index.html": (b"<html>hi</html>", "text/html; charset=utf-8"),
    "live/livestream.m3u8": (b"#EXTM3U\n", "application/vnd.apple.mpegurl"),
    "live/livestream-1.ts": (TS_BODY, "video/mp2t"),
    "vod/a.flv": (b"FLV\x01", "video/x-flv"),
    "vod/b.mp4": (b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
    "app.js": (b"var a = 1;", "text/javascript; charset=utf-8"),
    "app.css": (b"body {}", "text/css; charset=utf-8"),
    "data.json": (b"{}", "application/json"),
    "blob.bin": (b"\x01\x02", "application/octet-stream"),
}

CONF = """
listen 127.0.0.1:0;
srs_log_tank console;
http_server { enabled on; listen 127.0.0.1:0; dir {www}; crossdomain {cors}; }
vhost __defaultVhost__ { }
"""


@pytest.fixture(scope="module")
def www(tmp_path_factory):
    base = tmp_path_factory.mktemp("http")
    root = base / "www"
    for name, (body, _) in FILES.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
    (root / "big.mp4").write_bytes(os.urandom(5 * 1024 * 1024 + 7))
    (root / ".hidden").write_bytes(SECRET)
    (base / "secret.txt").write_bytes(SECRET)
    os.symlink(base / "secret.txt", root / "link.txt")
    os.symlink(base, root / "outdir")
    os.symlink(root / "live" / "livestream-1.ts", root / "inlink.ts")
    os.mkfifo(root / "fifo.ts")
    return root


@pytest.fixture(scope="module")
def srv(www):
    s = ServerThread(CONF.replace("{www}", str(www)).replace("{cors}", "on"), stats=True).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def srv_nocors(www):
    s = ServerThread(CONF.replace("{www}", str(www)).replace("{cors}", "off")).start()
    yield s
    s.stop()


# ------------------------------------------------------------------ pure helpers
@pytest.mark.parametrize("header,size,want", [
    ("bytes=0-99", 1000, (0, 99)),
    ("bytes=990-2000", 1000, (990, 999)),
    ("bytes=500-", 1000, (500, 999)),
    ("bytes=-100", 1000, (900, 999)),
    ("bytes=-5000", 1000, (0, 999)),
    ("bytes=1000-", 1000, "unsatisfiable"),
    ("bytes=-0", 1000, "unsatisfiable"),
    ("bytes=0-0", 0, "unsatisfiable"),
    ("bytes=5-1", 1000, None),
    ("bytes=0-1,5-6", 1000, None),
    ("items=0-1", 1000, None),
    ("bytes=a-b", 1000, None),
    ("bytes=-", 1000, None),
    ("bytes=+1-2", 1000, None),
])
def test_parse_range(header, size, want):
    assert parse_range(header, size) == want


@pytest.mark.parametrize("mount,vhost,path,want", [
    ("[vhost]/[app]/[stream].flv", "__defaultVhost__", "/live/ls.flv", ("live", "ls")),
    ("[vhost]/[app]/[stream].flv", "__defaultVhost__", "/live/sub/s1.flv", ("live/sub", "s1")),
    ("[vhost]/[app]/[stream].flv", "demo.com", "/live/livestream.flv", ("live", "livestream")),
    ("[app]/[stream].flv", "demo.com", "/live/livestream.flv", ("live", "livestream")),
    ("/[app]/[stream].flv", "__defaultVhost__", "/live/x.flv", ("live", "x")),
    ("[vhost]/flv/[app]/[stream].flv", "__defaultVhost__", "/flv/live/x.flv", ("live", "x")),
    ("[vhost]/flv/[app]/[stream].flv", "__defaultVhost__", "/live/x.flv", None),
    ("[vhost]/[app]/[stream].flv", "__defaultVhost__", "/x.flv", None),
    ("[vhost]/[app]/[stream].ts", "__defaultVhost__", "/live/x.flv", None),
    ("[vhost]/live/[stream].flv", "__defaultVhost__", "/live/x.flv", ("live", "x")),
])
def test_match_mount(mount, vhost, path, want):
    assert match_mount(mount, vhost, path) == want


# ------------------------------------------------------------------ static files
@pytest.mark.parametrize("name", sorted(FILES))
def test_mime_and_length(srv, name):
    body, mime = FILES[name]
    r = requests.get(srv.url(f"/{name}"), timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == mime
    assert r.headers["Content-Length"] == str(len(body))
    assert r.content == body


def test_index_html_for_directory(srv):
    r = requests.get(srv.url("/"), timeout=5)
    assert r.status_code == 200 and r.content == FILES["index.html"][0]


def test_head(srv):
    status, headers, body = raw_request(
        srv.http_port,
        b"HEAD /live/livestream-1.ts HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status == 200
    assert headers["content-length"] == str(len(TS_BODY))
    assert headers["content-type"] == "video/mp2t"
    assert body == b""


def test_large_file_streams_whole(srv, www):
    r = requests.get(srv.url("/big.mp4"), timeout=10)
    assert r.status_code == 200
    assert hashlib.md5(r.content).digest() == hashlib.md5((www / "big.mp4").read_bytes()).digest()


def test_keep_alive_serves_several_requests(srv):
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(srv.url("/app.js"), timeout=5).content == FILES["app.js"][0]


@pytest.mark.parametrize("rng,first,last", [("bytes=0-99", 0, 99), ("bytes=-100", 10140, 10239),
                                            ("bytes=10000-", 10000, 10239),
                                            ("bytes=10200-99999", 10200, 10239)])
def test_range(srv, rng, first, last):
    r = requests.get(srv.url("/live/livestream-1.ts"), headers={"Range": rng}, timeout=5)
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(TS_BODY)}"
    assert r.headers["Content-Length"] == str(last - first + 1)
    assert r.content == TS_BODY[first:last + 1]


def test_range_unsatisfiable(srv):
    r = requests.get(srv.url("/live/livestream-1.ts"), headers={"Range": "bytes=20000-"}, timeout=5)
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(TS_BODY)}"


def test_range_ignored_when_several_or_if_range_differs(srv):
    r = requests.get(srv.url("/live/livestream-1.ts"), headers={"Range": "bytes=0-1,4-5"},
                     timeout=5)
    assert r.status_code == 200 and r.content == TS_BODY
    r = requests.get(srv.url("/live/livestream-1.ts"),
                     headers={"Range": "bytes=0-1", "If-Range": '"other"'}, timeout=5)
    assert r.status_code == 200 and r.content == TS_BODY


def test_not_found_and_methods(srv):
    assert requests.get(srv.url("/nope.ts"), timeout=5).status_code == 404
    assert requests.get(srv.url("/live/nope/"), timeout=5).status_code == 404
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = requests.request(method, srv.url("/live/livestream.m3u8"), timeout=5)
        assert r.status_code == 405
        assert "GET" in r.headers["Allow"]


def test_cache_headers_and_validators(srv):
    r = requests.get(srv.url("/live/livestream.m3u8"), timeout=5)
    assert r.headers["Cache-Control"] == "max-age=1"
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    r = requests.get(srv.url("/live/livestream-1.ts"), timeout=5)
    assert r.headers["Cache-Control"] == "max-age=31536000, immutable"
    assert requests.get(srv.url("/index.html"), timeout=5).headers["Cache-Control"] == "no-cache"
    r = requests.get(srv.url("/live/livestream.m3u8"), headers={"If-None-Match": etag}, timeout=5)
    assert r.status_code == 304 and r.content == b""
    r = requests.get(srv.url("/live/livestream.m3u8"), headers={"If-Modified-Since": modified},
                     timeout=5)
    assert r.status_code == 304
    r = requests.get(srv.url("/live/livestream.m3u8"), headers={"If-None-Match": '"x"'}, timeout=5)
    assert r.status_code == 200


def test_cors(srv, srv_nocors):
    r = requests.get(srv.url("/live/livestream.m3u8"), timeout=5)
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    r = requests.options(srv.url("/live/livestream.m3u8"), headers={
        "Origin": "http://player.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"}, timeout=5)
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in r.headers["Access-Control-Allow-Methods"]
    assert "range" in r.headers["Access-Control-Allow-Headers"].lower()
    r = requests.get(srv.url("/nope.ts"), timeout=5)
    assert r.status_code == 404 and r.headers["Access-Control-Allow-Origin"] == "*"
    r = requests.get(srv_nocors.url("/live/livestream.m3u8"), timeout=5)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    assert requests.options(srv_nocors.url("/live/livestream.m3u8"), timeout=5).status_code == 405


def test_stats_count_requests(srv):
    before = srv.server.http_stats.get("/data.json", 0)
    for _ in range(3):
        requests.get(srv.url("/data.json"), timeout=5)
    assert srv.server.http_stats["/data.json"] == before + 3


# ------------------------------------------------------------------ path safety
@pytest.mark.parametrize("target", [
    "/../etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/..%2f..%2fetc/passwd",
    "/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/..%252f..%252fetc/passwd",
    "/..\\..\\etc\\passwd",
    "/%5c..%5c..%5cetc%5cpasswd",
    "/live/..%5c..%5csecret.txt",
    "/../secret.txt",
    "/live/../../secret.txt",
    "/./../secret.txt",
    "/live/%2e%2e/%2e%2e/secret.txt",
    "//etc/passwd",
    "/etc/passwd%00.ts",
    "/live/livestream.m3u8%00/../../secret.txt",
    "http://t/../secret.txt",
    "/link.txt",
    "/outdir/secret.txt",
    "/outdir/www/../secret.txt",
    "/.hidden",
    "/%2ehidden",
    "/fifo.ts",
])
def test_path_escape_refused(srv, target):
    status, _, body = get(srv.http_port, target)
    assert status in (400, 403, 404), target
    assert SECRET not in body and b"root:" not in body


def test_symlink_inside_root_is_served(srv):
    r = requests.get(srv.url("/inlink.ts"), timeout=5)
    assert r.status_code == 200 and r.content == TS_BODY


# ------------------------------------------------------------------ request limits
def test_request_line_too_long(srv):
    status, _, _ = get(srv.http_port, "/" + "a" * 9000)
    assert status == 414


def test_headers_too_large(srv):
    status, _, _ = get(srv.http_port, "/app.js", f"X-Big: {'b' * 20000}\r\n")
    assert status == 431
    many = "".join(f"X-H{i}: v\r\n" for i in range(200))
    status, _, _ = get(srv.http_port, "/app.js", many)
    assert status == 431
    assert requests.get(srv.url("/app.js"), timeout=5).status_code == 200


def test_slow_request_head_times_out(srv, monkeypatch):
    monkeypatch.setattr(http, "HEAD_TIMEOUT", 0.5)
    with socket.create_connection(("127.0.0.1", srv.http_port), timeout=5) as s:
        s.sendall(b"GET /app.js HTTP/1.1\r\nHost: t\r\n")     # and never the blank line
        data = s.recv(1024)
    assert data.startswith(b"HTTP/1.1 408")
