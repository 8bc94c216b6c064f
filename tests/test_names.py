"""Client names against a real server: tokens never reach the log, huge names and control
characters are refused with one short log line (lib/rtmp/limits.py, lib/rtmp/url.py).

The log text is the oracle here on purpose: what is checked is what got logged.
"""
import os
import socket
import urllib.error
import urllib.request

from lib.rtmp import session as rs
from tests.conftest import free_port, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient

CONF = """
listen {port};
srs_log_tank file;
srs_log_file {dir}/srs.log;
http_server { enabled on; listen 127.0.0.1:%d; dir {dir}; }
vhost __defaultVhost__ { http_remux { enabled on; mount [vhost]/[app]/[stream].flv; } }
"""
SECRET = "S3cr3tT0ken"


def start(server_factory):
    http_port = free_port()
    srv = server_factory(CONF % http_port)
    srv.http_port = http_port
    srv.logfile = srv.dir / "srs.log"
    wait_port(http_port)
    assert wait_for(lambda: srv.logfile.exists(), 15)
    return srv


def log(srv):
    return srv.logfile.read_text(errors="replace")


def lines_of(srv, port, level="[Warn]"):
    return [line for line in log(srv).splitlines() if level in line and f":{port}:" in line]


def raw_connect(srv, tc_url):
    """Handshake and connect with `tc_url` as given; (local port, whether the server closed)."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    port = sock.getsockname()[1]
    cs = rs.ClientSession(tc_url, "live")
    sock.sendall(cs.start())
    closed = False
    try:
        while cs.state not in ("connected", "closed"):
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            cs.feed(data)
            sock.sendall(cs.data_to_send())
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    sock.close()
    return port, closed


def refused(srv, name, action):
    """Publish or play `name`: (local port, True when the server refused/closed)."""
    c = RtmpTestClient(f"rtmp://127.0.0.1:{srv.port}/live/x", timeout=5)
    c.stream = name
    port = c.sock.getsockname()[1]
    ok = getattr(c, action)()
    state = c.session.state
    c.close()
    return port, not ok or state == "closed"


def test_url_errors_and_logs_never_hold_tokens(server_factory):
    srv = start(server_factory)
    bad = {"bad port": f"rtmp://127.0.0.1:bad/live?token={SECRET}",
           "no schema": f"127.0.0.1/live?token={SECRET}",
           "bad port ": f"rtmp://user:{SECRET}@127.0.0.1:x/live"}
    for reason, tc_url in bad.items():
        port, closed = raw_connect(srv, tc_url)
        assert closed, tc_url
        assert wait_for(lambda: lines_of(srv, port), 15), log(srv)
        lines = lines_of(srv, port)
        assert len(lines) == 1 and reason.strip() in lines[0], lines
    # an accepted connect and publish with tokens in the tcUrl and the stream: logged redacted
    c = RtmpTestClient(f"rtmp://127.0.0.1:{srv.port}/live?auth_key={SECRET}/livestream"
                       f"?token={SECRET}", timeout=5)
    assert c.publish() and c.session.state == "publishing"
    c.close()
    assert wait_for(lambda: "unpublish" in log(srv), 15)
    assert SECRET not in log(srv), log(srv)


def test_huge_names_refused_with_one_short_line(server_factory):
    srv = start(server_factory)
    before = os.path.getsize(srv.logfile)
    for action in ("publish", "play"):
        port, was_refused = refused(srv, "x" * (1 << 20), action)
        assert was_refused, action
        assert wait_for(lambda: lines_of(srv, port), 15)
        lines = lines_of(srv, port)
        assert len(lines) == 1 and "exceeds" in lines[0] and len(lines[0]) < 300, lines
        assert all(len(line) < 300 for line in log(srv).splitlines())
    port, closed = raw_connect(srv, f"rtmp://127.0.0.1/live/{'y' * (1 << 20)}")
    assert closed
    assert wait_for(lambda: lines_of(srv, port), 15)
    assert os.path.getsize(srv.logfile) - before < 4000       # 3 refusals, a few lines
    # HTTP-FLV: an app past the cap (the request line itself stays under pywsgi's 8 KiB)
    url = f"http://127.0.0.1:{srv.http_port}/{'a' * 2000}/livestream.flv"
    assert http_status(url) == 400
    assert "http-flv bad request: app of 2000 characters exceeds" in log(srv)
    assert srv.alive()


def test_control_characters_refused(server_factory):
    srv = start(server_factory)
    for name in ("live\x00stream", "live\nstream", "livestream?token=a\rb"):
        for action in ("publish", "play"):
            port, was_refused = refused(srv, name, action)
            assert was_refused, (name, action)
            assert wait_for(lambda: lines_of(srv, port), 15)
            lines = lines_of(srv, port)
            assert len(lines) == 1 and "control character" in lines[0], lines
    port, closed = raw_connect(srv, "rtmp://127.0.0.1/li\x01ve")
    assert closed and "control character 0x01" in lines_of(srv, port)[0]
    assert http_status(f"http://127.0.0.1:{srv.http_port}/live/a%0Ab.flv") == 400
    assert "http-flv bad request: stream holds control character 0x0a" in log(srv)
    # the server still serves a good client
    c = RtmpTestClient(f"rtmp://127.0.0.1:{srv.port}/live/livestream", timeout=5)
    assert c.publish() and c.session.state == "publishing"
    c.close()
    assert srv.alive()


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_errors_quoting_huge_peer_values_are_clipped(server_factory):
    """A 1 MB command name before connect: one warn line, cut short."""
    from lib.rtmp import amf0
    from lib.rtmp.chunk import encode_message
    from lib.rtmp.handshake import ClientHandshake
    srv = start(server_factory)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    port = sock.getsockname()[1]
    hs = ClientHandshake()
    sock.sendall(hs.start())
    c2 = b""
    while not hs.done:
        c2 = hs.feed(sock.recv(65536))
    payload = amf0.encode("n\n" * (1 << 19)) + amf0.encode(1.0)
    sock.sendall(c2 + encode_message(3, 20, 0, 0, payload, 128))
    assert wait_for(lambda: lines_of(srv, port), 10), log(srv)[-500:]
    sock.close()
    lines = lines_of(srv, port)
    assert len(lines) == 1 and "protocol error: command 'n" in lines[0], lines
    assert len(lines[0]) < 500 and lines[0].endswith(" characters)"), lines
    assert os.path.getsize(srv.logfile) < 2000


def test_format_and_invisible_characters_refused(server_factory):
    """Issue 20 point 6: a name that displays as another (U+202E RIGHT-TO-LEFT OVERRIDE, a
    zero-width space) is refused like a control character, and never printed."""
    srv = start(server_factory)
    for name in ("live\u202estream", "livestream\u200b", "live\u2066stream?token=x"):
        for action in ("publish", "play"):
            port, was_refused = refused(srv, name, action)
            assert was_refused, (name, action)
            assert wait_for(lambda: lines_of(srv, port), 5)
            lines = lines_of(srv, port)
            assert len(lines) == 1 and "character U+" in lines[0], lines
    port, closed = raw_connect(srv, "rtmp://127.0.0.1/li\u200bve")
    assert closed and "character U+200B" in lines_of(srv, port)[0]
    assert http_status(f"http://127.0.0.1:{srv.http_port}/live/a%E2%80%AEb.flv") == 400
    assert "http-flv bad request: stream holds invisible character U+202E" in log(srv)
    for char in "\u202e\u200b\u2066":
        assert char not in log(srv)
    c = RtmpTestClient(f"rtmp://127.0.0.1:{srv.port}/live/直播", timeout=5)
    assert c.publish() and c.session.state == "publishing"      # visible non-ASCII is fine
    c.close()
