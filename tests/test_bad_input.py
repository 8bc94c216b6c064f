"""Bad clients against a real server while a real ffmpeg publishes and another plays.

Black box: one `srsedge.py` process (ORIGIN_CONF), ffmpeg publishing the test clip in a loop, an
ffmpeg player decoding ~8 s. Meanwhile raw sockets send bad bytes, built with our own sans-IO
modules or by hand. For each bad client the server must close that connection (EOF or reset),
write exactly one warn line for it (found by the client's port) naming the reason, and nothing
else may suffer: the player decodes ~all frames with video and audio, the publisher stays up.

What is tolerated on purpose (SRS does the same) is checked too: fmt 1 on a chunk stream never
opened (librtmp's first ping) is accepted and the connection goes on.
"""
import random
import re
import socket
import struct
import time

from lib.rtmp import amf0
from lib.rtmp import session as rs
from lib.rtmp.chunk import ChunkReader, encode_message
from lib.rtmp.errors import ProtocolError
from lib.rtmp.handshake import ClientHandshake
from lib.rtmp.message import (
    MSG_AMF0_COMMAND, MSG_SET_CHUNK_SIZE, MSG_VIDEO, MSG_WINDOW_ACK_SIZE, encode_command,
)
from tests.conftest import ORIGIN_CONF, wait_for

PLAY_SECONDS = 8
FPS = 25
HANDSHAKE_TIMEOUT = 10.0   # lib/server/rtmp/connection.py HANDSHAKE_TIMEOUT
CLOSE_TIMEOUT = 5.0        # how long a bad client waits for the server to close it
MAX_BODY = 0xFFFFFF        # the largest message a 24-bit chunk length field can announce


class BadClient:
    """A raw socket to the server that records every byte it sends."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CLOSE_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self.sock.getsockname()[1]
        self.sent = bytearray()
        self.started = time.time()

    def send(self, data):
        self.sent += data
        self.sock.sendall(data)

    def recv_some(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        return data

    def handshake(self, complex_hs=True):
        """A valid C0C1 / S0S1S2 / C2 exchange; the server's bytes after S2 are returned."""
        hs = ClientHandshake(complex=complex_hs)
        self.send(hs.start())
        c2 = b""
        while not hs.done:
            c2 = hs.feed(self.recv_some())
        self.send(c2)
        return hs.leftover

    def connect(self, tc_url, intent=None):
        """Handshake and connect with our ClientSession, then optionally play or publish
        (`intent` = ("play"|"publish", stream)); returns the session once that succeeded."""
        app = tc_url.split("/", 3)[3]
        cs = rs.ClientSession(tc_url, app)
        want = "connected"
        if intent is not None:
            getattr(cs, intent[0])(intent[1])
            want = "playing" if intent[0] == "play" else "publishing"
        self.send(cs.start())
        while cs.state != want:
            assert cs.state != "closed", f"server refused {intent}"
            cs.feed(self.recv_some())
            self.send(cs.data_to_send())
        return cs

    def wait_closed(self, within=CLOSE_TIMEOUT):
        """Read until the server closes: EOF or reset, at most `within` s after connecting.
        Returns the seconds from connecting to the close."""
        self.sock.settimeout(max(0.1, self.started + within - time.time()))
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        except socket.timeout:
            raise AssertionError(f"server did not close client :{self.port}") from None
        finally:
            self.sock.close()
        return time.time() - self.started


def command(payload, csid=3, stream_id=0, chunk_size=128):
    return encode_message(csid, MSG_AMF0_COMMAND, stream_id, 0, payload, chunk_size)


def connect_payload(tc_url):
    return encode_command("connect", 1.0, {"app": "live", "tcUrl": tc_url, "flashVer": "LNX 9,0,124,2"})


def nested_object(depth):
    """An AMF0 object nested `depth` levels deep, by hand (our encoder refuses past the cap)."""
    return b"\x03" + b"\x00\x01a\x03" * (depth - 1) + b"\x00\x00\x09" * depth


def server_side_error(client_bytes, extra):
    """The ProtocolError our sans-IO ServerSession raises for `extra` after `client_bytes`."""
    mirror = rs.ServerSession()
    for ev in mirror.feed(bytes(client_bytes)):
        if isinstance(ev, rs.ConnectRequest):
            mirror.accept_connect()
    try:
        mirror.feed(extra)
    except ProtocolError as e:
        return str(e)
    return None


# ---------------------------------------------------------------- bad clients
# Each takes (port, tc_url), misbehaves and returns (BadClient, reason the warn line must name).

def sends(data, reason, handshake=None):
    """A bad client sending `data`, after a valid "complex" or "simple" handshake if asked."""
    def bad(port, tc_url):
        c = BadClient(port)
        if handshake:
            c.handshake(complex_hs=handshake == "complex")
        c.send(data)
        return c, reason
    return bad


def set_chunk_size(raw_u32):
    return encode_message(2, MSG_SET_CHUNK_SIZE, 0, 0, raw_u32, 128)


SIMPLE_BAD_CLIENTS = {
    "garbage_handshake": sends(b"this is not rtmp at all\r\n" * 80,
                               "protocol error: C0 version 116, want 3"),
    "c0_rtmpe": sends(b"\x06" + bytes(1536),
                      "protocol error: C0 version 6, want 3 (encrypted RTMPE"),
    "c0_http": sends(b"GET /live/livestream.flv HTTP/1.1\r\nHost: x\r\n\r\n",
                     "protocol error: C0 version 71, want 3 (looks like an HTTP request"),
    "c0_tls": sends(b"\x16\x03\x01\x02\x00\x01" + bytes(200),
                    "protocol error: C0 version 22, want 3 (looks like a TLS ClientHello"),
    "chunk_size_zero": sends(set_chunk_size(bytes(4)), "protocol error: chunk size 0", "complex"),
    "chunk_size_2_31": sends(set_chunk_size(b"\x80\x00\x00\x00"),
                             "protocol error: chunk size 2147483648", "simple"),
    "chunk_size_max_u32": sends(set_chunk_size(b"\xff\xff\xff\xff"),
                                "protocol error: chunk size 4294967295", "complex"),
    "fmt2_unopened": sends(bytes([0x80 | 9]) + b"\x00\x00\x28" + bytes(64),
                           "protocol error: fmt 2 on chunk stream 9 never opened", "simple"),
    # 2-byte basic header: chunk stream 300
    "fmt3_unopened": sends(bytes([0xC0 | 0, 300 - 64]) + bytes(64),
                           "protocol error: fmt 3 on chunk stream 300 never opened", "complex"),
    "amf_too_deep": sends(command(amf0.encode("connect", 1.0) + nested_object(amf0.MAX_DEPTH + 8)),
                          f"protocol error: AMF0 nesting deeper than {amf0.MAX_DEPTH}", "complex"),
    "truncated_connect": sends(command(connect_payload("rtmp://127.0.0.1/live")[:-12]),
                               "protocol error: truncated AMF0 data", "complex"),
}


def largest_message(port, tc_url):
    """20 MiB cannot be announced (the length field is 24 bits): send the largest message a
    header can announce, 16 MiB - 1, in one chunk, with a command that is not AMF past its name."""
    c = BadClient(port)
    c.handshake()
    c.send(set_chunk_size(struct.pack(">I", 0x7FFFFFFF)))
    payload = amf0.encode("connect") + b"\xff" * (MAX_BODY - 10)
    c.send(command(payload, chunk_size=0x7FFFFFFF))
    return c, "protocol error: unsupported AMF0 marker 0xff"


def partial_messages_flood(port, tc_url):
    """Before connect, 300 chunk streams each get 64 KiB of a 1 MiB message: the reader holds
    every byte as a partial message until the total passes the cap (the largest message,
    16 MiB), on the 257th chunk stream."""
    c = BadClient(port)
    c.handshake()
    c.send(set_chunk_size(struct.pack(">I", 65536)))
    try:
        for csid in range(320, 620):
            header = (b"\x01" + (csid - 64).to_bytes(2, "little") + bytes(3)
                      + (1 << 20).to_bytes(3, "big") + bytes([MSG_VIDEO]) + (1).to_bytes(4, "little"))
            c.send(header + bytes(65536))
    except OSError:
        pass                        # closed by the server before all of it went out
    return c, (f"protocol error: {257 * 65536} bytes of partial messages on 257 chunk streams "
               f"exceed {16 << 20}")


def no_transaction_id(port, tc_url):
    c = BadClient(port)
    cs = c.connect(tc_url)
    c.send(command(amf0.encode("hello"), chunk_size=cs.out_chunk_size))
    return c, "protocol error: unknown command 'hello' without transaction id"


def rejected_junk(client_bytes, junk_maker):
    """The first junk from `junk_maker(rng)` (seeds 0, 1, ...) that our ServerSession rejects
    after `client_bytes`, and its error: the server must close with the same reason."""
    for seed in range(1000):
        junk = junk_maker(random.Random(seed))
        reason = server_side_error(client_bytes, junk)
        if reason is not None:
            return junk, f"protocol error: {reason}"
    raise AssertionError("no rejected junk found")


def random_after_connect(port, tc_url):
    c = BadClient(port)
    c.connect(tc_url)
    junk, reason = rejected_junk(c.sent, lambda rng: rng.randbytes(2048))
    c.send(junk)
    return c, reason


def random_command_after_connect(port, tc_url):
    """A well-formed chunk header (command, csid 3) around random AMF bytes."""
    c = BadClient(port)
    cs = c.connect(tc_url)
    junk, reason = rejected_junk(
        c.sent, lambda rng: command(rng.randbytes(300), chunk_size=cs.out_chunk_size))
    c.send(junk)
    return c, reason


def junk_while_playing(port, tc_url):
    """A second player of the stream the real player watches breaks: only it is closed."""
    c = BadClient(port)
    c.connect(tc_url, ("play", "livestream"))
    c.send(bytes([0xC0 | 40]) + bytes(32))
    return c, "protocol error: fmt 3 on chunk stream 40 never opened"


def junk_while_publishing(port, tc_url):
    """A publisher of another stream breaks after a video message: its source is released."""
    c = BadClient(port)
    cs = c.connect(tc_url, ("publish", "bad"))
    cs.send_media(MSG_VIDEO, 0, b"\x17\x00\x00\x00\x00" + bytes(20))
    c.send(cs.data_to_send() + bytes([0x80 | 41]) + bytes(32))
    return c, "protocol error: fmt 2 on chunk stream 41 never opened"


def junk_while_streaming(port, tc_url):
    """A publisher whose media already flows (read in the event loop's callback, not by its
    greenlet) breaks: the error still closes only it, with one line."""
    c = BadClient(port)
    cs = c.connect(tc_url, ("publish", "bad2"))
    for ts in (0, 40, 80):
        cs.send_media(MSG_VIDEO, ts, (b"\x17" if ts == 0 else b"\x27") + b"\x01\x00\x00\x00" + bytes(20))
        c.send(cs.data_to_send())
        time.sleep(0.15)
    c.send(bytes([0x80 | 42]) + bytes(32))
    return c, "protocol error: fmt 2 on chunk stream 42 never opened"


BAD_CLIENTS = dict(SIMPLE_BAD_CLIENTS, **{f.__name__: f for f in (
    largest_message, partial_messages_flood, no_transaction_id, random_after_connect, random_command_after_connect,
    junk_while_playing, junk_while_publishing, junk_while_streaming)})


def fmt1_unopened_is_tolerated(port, tc_url):
    """fmt 1 as the first chunk of a chunk stream (librtmp's first ping): accepted, as SRS."""
    c = BadClient(port)
    c.handshake()
    header = bytes([0x40 | 4]) + b"\x00\x00\x00" + (4).to_bytes(3, "big") + bytes([MSG_WINDOW_ACK_SIZE])
    c.send(header + struct.pack(">I", 2500000) + command(connect_payload(tc_url)))
    reader = ChunkReader()
    deadline = time.time() + CLOSE_TIMEOUT
    names = []
    while "_result" not in names and time.time() < deadline:
        for msg in reader.feed(c.recv_some()):
            if msg.type_id == MSG_AMF0_COMMAND:
                names.append(amf0.decode_all(msg.payload)[0])
    c.sock.close()
    return c, names


# ---------------------------------------------------------------- the test

def warn_lines(log, port):
    return [line for line in log.splitlines()
            if "[Warn]" in line and f"127.0.0.1:{port}:" in line]


def test_bad_clients_do_not_disturb_publisher_and_player(server_factory, media_file,
                                                        publisher_factory, player_factory):
    srv = server_factory(ORIGIN_CONF)
    url = srv.url("live/livestream")
    tc_url = srv.url("live")
    pub = publisher_factory(url, media_file, loop=True)
    assert wait_for(lambda: "publish " in srv.log_text(), timeout=10), srv.log_text()

    # The slow ones first (slowloris): half a handshake, or a handshake and no connect, then
    # silence until the server's timeout.
    silent = [BadClient(srv.port), BadClient(srv.port)]
    silent[0].send(b"\x03" + bytes(700))
    silent[1].handshake()

    player = player_factory(url, PLAY_SECONDS)
    assert wait_for(lambda: "play " in srv.log_text(), timeout=10), srv.log_text()

    results = []
    for name, bad in BAD_CLIENTS.items():
        client, reason = bad(srv.port, tc_url)
        results.append((name, client.port, reason, client.wait_closed()))
    tolerated, names = fmt1_unopened_is_tolerated(srv.port, tc_url)

    player.wait(timeout=PLAY_SECONDS + 20)
    silent_closed_after = [c.wait_closed(within=HANDSHAKE_TIMEOUT + 2) for c in silent]
    assert wait_for(lambda: all(warn_lines(srv.log_text(), c.port) for c in silent), timeout=2)

    log = srv.log_text()
    problems = []
    for name, port, reason, seconds in results:
        lines = warn_lines(log, port)
        if len(lines) != 1 or reason not in lines[0]:
            problems.append(f"{name}: want one warn line with {reason!r}, got {lines}")
        if seconds > 2.0:
            problems.append(f"{name}: closed after {seconds:.1f}s")
    assert not problems, "\n".join(problems)

    assert "_result" in names, names
    assert warn_lines(log, tolerated.port) == []

    for c, seconds in zip(silent, silent_closed_after):
        lines = warn_lines(log, c.port)
        assert len(lines) == 1 and f"no handshake/connect in {HANDSHAKE_TIMEOUT:g}s" in lines[0], lines
        assert HANDSHAKE_TIMEOUT - 1 < seconds < HANDSHAKE_TIMEOUT + 2, silent_closed_after

    # Only the bad clients were warned about; nothing failed inside the server.
    warns = [line for line in log.splitlines() if "[Warn]" in line]
    assert len(warns) == len(BAD_CLIENTS) + len(silent), "\n".join(warns)
    assert "[Error]" not in log and "Traceback" not in log, log
    assert re.search(r"unpublish \S*live/bad: client closed", log), log
    assert re.search(r"unpublish \S*live/bad2: client closed", log), log

    assert player.has_video and player.has_audio, player.stderr
    assert player.frames >= 0.9 * PLAY_SECONDS * FPS, (player.frames, player.stderr)
    assert pub.alive(), pub.stop()
    assert srv.alive()
