"""HTTP hooks against a real local HTTP server (port 0) that records bodies and answers as told."""
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lib.server.core.hooks import (FIELDS, REJECTING_ACTIONS, HookContext, Hooks, build_body,
                              check_response, redact, stream_url)

ROOT = Path(__file__).resolve().parent.parent
FAST = 0.3  # seconds: the timeout of the timeout tests (`fast_hooks`)
ANSWERED = 10.0  # seconds: the timeout of hooks that answer (a loaded machine can take a second)


class HookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), HookHandler)
        self.answers = {}      # path -> (status, body bytes, delay seconds)
        self.calls = []        # (path, client port, parsed JSON body), in arrival order

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def answer(self, path, body=b"0", status=200, delay=0.0):
        self.answers[path] = (status, body, delay)
        return self.url(path)

    def paths(self):
        return [path.split("?")[0] for path, _, _ in self.calls]

    @classmethod
    @contextmanager
    def running(cls):
        """A hook server answering on its own thread until the block ends."""
        srv = cls()
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            yield srv
        finally:
            srv.shutdown()
            srv.server_close()


class HookHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so Session reuse is visible

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = self.path.split("?")[0]
        self.server.calls.append((self.path, self.client_address[1], json.loads(raw)))
        status, body, delay = self.server.answers.get(path, (404, b"not found", 0.0))
        time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (timeout tests)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def running_server():
    with HookServer.running() as srv:
        yield srv


@pytest.fixture
def server(running_server):
    running_server.answers.clear()
    running_server.calls.clear()
    return running_server


@pytest.fixture
def hooks():
    h = Hooks(timeout=ANSWERED)
    yield h
    h.close()


@pytest.fixture
def fast_hooks():
    h = Hooks(timeout=FAST)
    yield h
    h.close()


def publish_ctx(**kw):
    base = dict(client_id="9308h583", ip="192.168.1.10", vhost="__defaultVhost__", app="live",
                stream="livestream", param="?token=s3cr3t&salt=yyy",
                tc_url="rtmp://127.0.0.1/live", page_url="http://www.test.com/live.html",
                server_id="vid-werty", service_id="svc-1", stream_id="vid-124q9y3")
    base.update(kw)
    return HookContext(**base)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- acceptance rules ---------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"0", b"0\n", b"0 \r\n", b'{"code":0}',
                                  b'{"code": 0, "data": {}}', b'{"code":0,"msg":"ok"}\n'])
@pytest.mark.parametrize("status", [200, 201])
def test_accepts(server, hooks, body, status):
    url = server.answer("/ok", body, status)
    assert hooks.call("on_publish", [url], publish_ctx()) == (True, "")
    assert len(server.calls) == 1


@pytest.mark.parametrize("body,status,why", [
    (b"1", 200, "code 1"),
    (b"-1\n", 200, "code -1"),
    (b'{"code":1}', 200, "code 1"),
    (b'{"code": 403, "data": {}}', 200, "code 403"),
    (b'{"data": {}}', 200, "no integer code"),
    (b'{"code": "0"}', 200, "no integer code"),
    (b'{"code": false}', 200, "no integer code"),
    (b"ok", 200, "not JSON: 'ok'"),
    (b"<html>nope</html>", 200, "not JSON"),
    (b"", 200, "empty response"),
    (b'"0"', 200, "bad response"),
    (b"[0]", 200, "bad response"),
    (b"0", 500, "HTTP 500"),
    (b"0", 404, "HTTP 404"),
    (b"0", 403, "HTTP 403"),
    (b"0", 302, "HTTP 302"),
])
def test_rejects(server, hooks, body, status, why):
    url = server.answer("/api/v1/streams", body, status)
    ok, reason = hooks.call("on_publish", [url], publish_ctx())
    assert not ok
    assert reason.startswith(f"on_publish {url}: ")
    assert why in reason


def test_check_response_is_pure():
    assert check_response(200, b"0") is None
    assert check_response(201, b' {"code":0}\n') is None
    assert check_response(204, b"") == "HTTP 204"
    assert check_response(200, b"x" * 500).endswith("...'")


def test_connect_refused(hooks):
    url = f"http://127.0.0.1:{closed_port()}/api/v1/clients"
    ok, reason = hooks.call("on_connect", [url], publish_ctx())
    assert not ok
    assert reason == f"on_connect {url}: connect refused"


def test_timeout_is_bounded(server, fast_hooks):
    url = server.answer("/slow", b"0", delay=FAST * 10)
    start = time.monotonic()
    ok, reason = fast_hooks.call("on_play", [url], publish_ctx())
    elapsed = time.monotonic() - start
    assert not ok
    assert reason == f"on_play {url}: timeout after 0.3s"
    assert elapsed < FAST * 6                  # well before the answer would have come


def test_bad_url(hooks):
    ok, reason = hooks.call("on_publish", ["not-a-url?token=abc"], publish_ctx())
    assert not ok
    assert reason.startswith("on_publish not-a-url?token=***: MissingSchema")
    assert "abc" not in reason


def test_whole_request_capped_under_gevent(tmp_path):
    """In the server process (monkey-patched), a trickling hook cannot hold a client longer than
    about `timeout`, even though each single read is quick."""
    script = tmp_path / "trickle.py"
    script.write_text(textwrap.dedent("""
        from gevent import monkey; monkey.patch_all()
        import sys, time, gevent
        from gevent.server import StreamServer
        sys.path.insert(0, sys.argv[1])
        from lib.server.core.hooks import Hooks, HookContext

        def trickle(sock, addr):
            sock.recv(65536)
            for byte in b"HTTP/1.1 200 OK\\r\\nContent-Length: 1\\r\\n\\r\\n0":
                sock.sendall(bytes([byte]))
                gevent.sleep(0.1)

        srv = StreamServer(("127.0.0.1", 0), trickle)
        srv.start()
        start = time.monotonic()
        ok, reason = Hooks(timeout=0.4).call(
            "on_publish", [f"http://127.0.0.1:{srv.server_port}/x"], HookContext())
        print(ok, round(time.monotonic() - start, 2), reason)
    """))
    out = subprocess.run([sys.executable, str(script), str(ROOT)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    ok, elapsed, reason = out.stdout.split(" ", 2)
    assert ok == "False"
    assert float(elapsed) < 2.0  # the trickle alone would take ~4 s
    assert "timeout after 0.4s" in reason


# --- several URLs -------------------------------------------------------------------------

def test_urls_called_in_order(server, hooks):
    urls = [server.answer("/a"), server.answer("/b", b'{"code":0}'), server.answer("/c")]
    assert hooks.call("on_play", urls, publish_ctx()) == (True, "")
    assert server.paths() == ["/a", "/b", "/c"]


@pytest.mark.parametrize("action", sorted(REJECTING_ACTIONS))
def test_first_rejection_stops(server, hooks, action):
    urls = [server.answer("/a"), server.answer("/no", b"1"), server.answer("/c")]
    ok, reason = hooks.call(action, urls, publish_ctx())
    assert not ok
    assert reason == f"{action} {urls[1]}: code 1"
    assert server.paths() == ["/a", "/no"]


@pytest.mark.parametrize("action", ["on_close", "on_unpublish", "on_stop"])
def test_notifications_call_every_url(server, hooks, action):
    urls = [server.answer("/no", b"1"), server.answer("/b"), server.answer("/err", b"0", 500)]
    ok, reason = hooks.call(action, urls, publish_ctx())
    assert not ok
    assert reason == f"{action} {urls[0]}: code 1; {action} {urls[2]}: HTTP 500"
    assert server.paths() == ["/no", "/b", "/err"]


def test_no_urls_is_ok(hooks):
    assert hooks.call("on_connect", [], publish_ctx()) == (True, "")


def test_unknown_action(hooks):
    with pytest.raises(ValueError):
        hooks.call("on_dance", [], publish_ctx())


def test_session_is_reused(server, hooks):
    url = server.answer("/ok")
    hooks.call("on_connect", [url], publish_ctx())
    hooks.call("on_close", [url], publish_ctx())
    ports = {port for _, port, _ in server.calls}
    assert len(server.calls) == 2 and len(ports) == 1


def test_hook_url_query_is_sent(server, hooks):
    url = server.answer("/q") + "?opaque=abc"
    assert hooks.call("on_stop", [url], publish_ctx())[0]
    assert server.calls[0][0] == "/q?opaque=abc"


# --- bodies, with SRS's field names -------------------------------------------------------

EXPECTED_KEYS = {
    "on_connect": {"server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                   "stream", "param", "tcUrl", "pageUrl"},
    "on_close": {"server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                 "send_bytes", "recv_bytes"},
    "on_publish": {"server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                   "tcUrl", "stream", "param", "stream_url", "stream_id"},
    "on_play": {"server_id", "service_id", "action", "client_id", "ip", "vhost", "app",
                "stream", "tcUrl", "param", "pageUrl", "stream_url", "stream_id"},
}
EXPECTED_KEYS["on_unpublish"] = EXPECTED_KEYS["on_stop"] = EXPECTED_KEYS["on_publish"]


@pytest.mark.parametrize("action", sorted(EXPECTED_KEYS))
def test_body_sent_per_action(server, hooks, action):
    url = server.answer("/hook")
    ctx = publish_ctx(send_bytes=10240, recv_bytes=20480)
    assert hooks.call(action, [url], ctx) == (True, "")
    (_, _, body), = server.calls
    assert set(body) == EXPECTED_KEYS[action]
    assert list(body) == list(FIELDS[action])
    expected = {
        "server_id": "vid-werty", "service_id": "svc-1", "action": action,
        "client_id": "9308h583", "ip": "192.168.1.10", "vhost": "__defaultVhost__",
        "app": "live", "stream": "livestream", "param": "?token=s3cr3t&salt=yyy",
        "tcUrl": "rtmp://127.0.0.1/live", "pageUrl": "http://www.test.com/live.html",
        "stream_url": "/live/livestream", "stream_id": "vid-124q9y3",
        "send_bytes": 10240, "recv_bytes": 20480,
    }
    assert body == {k: expected[k] for k in body}


def test_stream_id_omitted_when_unknown():
    body = build_body("on_unpublish", publish_ctx(stream_id=""))
    assert "stream_id" not in body
    assert body["stream_url"] == "/live/livestream"


def test_close_bytes_are_numbers():
    body = build_body("on_close", HookContext(client_id="c1", send_bytes=1, recv_bytes=2))
    assert body["send_bytes"] == 1 and body["recv_bytes"] == 2
    assert json.loads(json.dumps(body)) == body


@pytest.mark.parametrize("vhost,app,stream,url", [
    ("__defaultVhost__", "live", "livestream", "/live/livestream"),
    ("v.test.com", "live", "livestream", "v.test.com/live/livestream"),
    ("__defaultVhost__", "live", "livestream.flv", "/live/livestream"),
    ("__defaultVhost__", "live", "cam.m3u8", "/live/cam"),
    # SRS 7 srs_generate_stream_url -> srs_path_filename drops everything from the LAST dot,
    # whatever follows it (SRS's utest srs_utest_protocol2.cpp covers .flv/.m3u8)
    ("__defaultVhost__", "live", "WavMain.exe_rooms_290", "/live/WavMain"),
    ("__defaultVhost__", "live", "a.b.ts", "/live/a.b"),
])
def test_stream_url(vhost, app, stream, url):
    assert stream_url(vhost, app, stream) == url


# --- redaction ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,shown", [
    ("?token=abc&salt=yyy", "?token=***&salt=yyy"),
    ("token=abc", "token=***"),
    ("rtmp://h/live?vhost=v&key=d2fa801d&x=1", "rtmp://h/live?vhost=v&key=***&x=1"),
    ("http://h:8085/api?secret=1&sign=2&auth=3&password=4&passwd=5",
     "http://h:8085/api?secret=***&sign=***&auth=***&password=***&passwd=***"),
    ("livestream?TOKEN=abc", "livestream?TOKEN=***"),
    ("?access_token=a&txSecret=b&api_key=c&txTime=5", "?access_token=***&txSecret=***&api_key=***&txTime=5"),
    ("http://user:pa55@h/api", "http://user:***@h/api"),
    ("http://h/api/v1/streams", "http://h/api/v1/streams"),
    ("?token=&a=b#frag", "?token=***&a=b#frag"),
])
def test_redact(text, shown):
    assert redact(text) == shown


def test_reasons_are_redacted_but_bodies_are_not(server, hooks):
    url = server.answer("/deny", b"1") + "?token=hooksecret"
    ok, reason = hooks.call("on_publish", [url], publish_ctx())
    assert not ok
    assert "hooksecret" not in reason and "token=***" in reason
    assert server.calls[0][2]["param"] == "?token=s3cr3t&salt=yyy"


def test_refused_reason_is_redacted(hooks):
    url = f"http://127.0.0.1:{closed_port()}/x?sign=abc"
    ok, reason = hooks.call("on_play", [url], publish_ctx())
    assert not ok and "abc" not in reason and "sign=***" in reason


def test_garbage_body_is_redacted_in_reason(server, hooks):
    url = server.answer("/echo", b"bad token=leak123")
    ok, reason = hooks.call("on_connect", [url], publish_ctx())
    assert not ok and "leak123" not in reason
