"""Resource hygiene and live bad input against real server processes (issue 7).

Black box: real `srsedge.py` processes with the HTTP API on, ffmpeg publishing the test clip.
What a process holds is read from its `/api/v1/debug/runtime` (greenlets, fds, sockets,
sources, clients, connections, RSS; see docs/api.md) before and after a load:
- leak: thousands of connect/play/publish/disconnect cycles of every kind (mid-handshake, after
  connect, after play, a player that never reads, resets) leave nothing behind;
- edge: ingest start/stop cycles (grace period expiring each time, and re-attaching inside it)
  leave no source, greenlet or socket on the edge and no client on the origin;
- slow clients: RTMP slowloris (half handshakes, silent sockets) closed at HANDSHAKE_TIMEOUT,
  HTTP slow heads answered 408 at HEAD_TIMEOUT, oversized heads and bad paths refused, while an
  RTMP player, an HTTP-FLV player and ffmpeg keep playing;
- flood: `max_connections` holds under 300 connections at once;
- live fuzz: mutated real sessions (tests/test_fuzz.py's capture and mutators) against an origin
  and an edge while players play through both.
Players are judged by what they saw: no disconnect, no pause in media over MAX_GAP, timestamps
monotonic. Servers must stay up with no `[Error]` line and no traceback in their logs.

Rules: counts are compared with SLACK (pools: the API's own request greenlet and socket);
RSS baselines are taken after a warm-up (Python keeps its arenas) with `play.queue_length` short
so the shared log reaches its steady size within seconds. Every loop is bounded in count and
time; every socket has a timeout.
"""
import json
import selectors
import socket
import struct
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from hypothesis import Phase, given, settings, strategies as st

from tests.conftest import free_port, wait_for
from tests.rtmpclient import RtmpTestClient, longest_pause, timestamp_regressions
from tests.test_bad_input import HANDSHAKE_TIMEOUT, BadClient
from tests.test_fuzz import FUZZ, _pieces, capture, mutants  # noqa: F401  (capture: fixture)
from tests.test_http import raw_request
from tests.test_http_flv import parse_tags

HEAD_TIMEOUT = 30.0            # lib/server/http/server.py HEAD_TIMEOUT
MAX_GAP = 1.0                  # longest pause in media a player may see (s)
QUEUE_LENGTH = 2               # play.queue_length (s): the shared log's steady size comes fast
RSS_SLACK_KB = 15 * 1024
TOKEN = "s3cr3t-t0ken"
SLACK = {"greenlets": 2, "greenlet_objects": 2, "fds": 1, "sockets": 1, "sources": 0,
         "clients": 0, "connections": 0}
CYCLE_WARMUP = 200
CYCLES = 1600
CYCLE_THREADS = 4
EDGE_CYCLES = 50
SLOW_RTMP_BYTE, SLOW_RTMP_SILENT, SLOW_HTTP = 200, 100, 40
FLOOD, FLOOD_MAX = 300, 100
FUZZ_SESSIONS, FUZZ_PARALLEL = 400, 20
FUZZ_READ = 1.0                # a fuzz client reads the answer this long, then hangs up
FUZZ_PLAY = 8                  # s the ffmpeg player of the live fuzz decodes


# ---------------------------------------------------------------- servers and their counts

def server_conf(api_port, vhost="", top="", http_port=None):
    http = (f"http_server {{ enabled on; listen 127.0.0.1:{http_port}; dir {{dir}}; }}"
            if http_port else "")
    return f"""
listen {{port}};
srs_log_tank console;
{top}
http_api {{ enabled on; listen {api_port}; }}
{http}
vhost __defaultVhost__ {{
    play {{ queue_length {QUEUE_LENGTH}; publisher_wait 1; }}   # absent: not found after 1 s
    {vhost}
}}
"""


def start(server_factory, name, vhost="", top="", http=False):
    """A server with the API (and the HTTP server when asked): `srv.api`, `srv.http_port`."""
    api_port = free_port()
    http_port = free_port() if http else None
    srv = server_factory(server_conf(api_port, vhost, top, http_port), name=name)
    srv.api, srv.http_port = api_port, http_port
    assert wait_for(lambda: runtime(srv), 10), srv.log_text()
    return srv


def runtime(srv):
    """The server's /api/v1/debug/runtime?gc=1 (None while the API does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.api}/api/v1/debug/runtime?gc=1",
                                    timeout=10) as r:
            data = json.load(r)
    except OSError:
        return None
    assert data["code"] == 0, data
    return data


def baseline(srv, readings=5):
    """The lowest of a few readings 0.3 s apart (what a load just before left goes first)."""
    seen = [runtime(srv)]
    for _ in range(readings - 1):
        time.sleep(0.3)
        seen.append(runtime(srv))
    return {k: min(r[k] for r in seen) if isinstance(v, int) else v for k, v in seen[-1].items()}


def back_to(srv, base, timeout=10.0, slack=SLACK):
    """Poll until every count is within `slack` of `base`: (last reading, what is still over)."""
    deadline = time.time() + timeout
    while True:
        now = runtime(srv)
        over = {k: (base[k], now[k]) for k, s in slack.items() if now[k] > base[k] + s}
        if not over or time.time() > deadline:
            return now, over
        time.sleep(0.2)


def figures(name, base, now):
    keys = ("greenlets", "fds", "sockets", "sources", "clients", "connections", "rss_kb")
    print(f"{name}: " + ", ".join(f"{k} {base[k]} -> {now[k]}" for k in keys))


def log_problems(*servers):
    return [f"{s.dir.name}: {line}" for s in servers for line in s.log_text().splitlines()
            if "[Error]" in line or "Traceback" in line]


def publish(srv, publisher_factory, media_file, path="live/livestream"):
    pub = publisher_factory(srv.url(path), media_file)
    assert wait_for(lambda: f"publish __defaultVhost__/{path}" in srv.log_text(), 10), \
        srv.log_text()
    return pub


# ---------------------------------------------------------------- players that watch

def nodelay(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def reset(sock):
    """Abortive close: the peer gets RST, not FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def rtmp_client(url, timeout=5.0):
    c = RtmpTestClient(url, timeout=timeout)
    nodelay(c.sock)
    return c


class Watcher:
    """A player reading in a thread until stop() (at most `limit` s): what arrived and when."""

    def __init__(self, limit=90.0):
        self.media = []                # (type_id, timestamp, payload)
        self.arrivals = []
        self.closed = False
        self.error = None
        self._stop = threading.Event()
        self._limit = limit
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        assert wait_for(lambda: any(t == 9 for t, _, _ in self.media) or self.closed, 10), \
            f"{self}: no video ({self.error})"
        return self

    def _run(self):
        deadline = time.time() + self._limit
        try:
            while not self._stop.is_set() and not self.closed and time.time() < deadline:
                self.read_some()
        except OSError as e:
            self.error, self.closed = e, True

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.close()
        return self

    def longest_pause(self, after=0.0):
        return longest_pause(self, after)

    def verdict(self, since):
        """Problems this player saw since `since` (empty list: unharmed)."""
        problems = []
        if self.closed:
            problems.append(f"disconnected ({self.error})")
        if self.longest_pause(since) > MAX_GAP:
            problems.append(f"paused {self.longest_pause(since):.2f}s")
        if timestamp_regressions(self.media):
            problems.append(f"{timestamp_regressions(self.media)} timestamp regressions")
        if not [t for t in self.arrivals if t >= time.time() - 2]:
            problems.append("no media in the last 2 s")
        return [f"{self}: {p}" for p in problems]


class RtmpWatcher(Watcher):
    def __init__(self, url, limit=90.0):
        super().__init__(limit)
        self.url = url
        self.client = rtmp_client(url)
        self.client.media, self.client.arrivals = self.media, self.arrivals
        assert self.client.play(), f"play {url} refused"

    def read_some(self):
        c = self.client
        c.pump_until(lambda: self._stop.is_set() or c.closed, 0.5)
        self.closed = self.closed or c.closed

    def close(self):
        self.client.close()

    def __str__(self):
        return f"rtmp player {self.url}"


class FlvWatcher(Watcher):
    """An HTTP-FLV player on a raw socket (tags parsed as they arrive)."""

    def __init__(self, port, path, limit=90.0):
        super().__init__(limit)
        self.path = path
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            data = self.sock.recv(4096)
            assert data, "HTTP-FLV: closed before the response head"
            head += data
        head, _, self.buf = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        self.pos = 13                  # FLV header + PreviousTagSize0

    def read_some(self):
        self.sock.settimeout(0.5)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        if not data:
            self.closed = True
            return
        self.buf += data
        tags, self.pos = parse_tags(self.buf, self.pos)
        now = time.time()
        for tag in tags:
            self.media.append(tag)
            self.arrivals.append(now)
        self.buf, self.pos = self.buf[self.pos:], 0

    def close(self):
        self.sock.close()

    def __str__(self):
        return f"http-flv player {self.path}"


# ---------------------------------------------------------------- connect/play/disconnect cycles

VIDEO_SH = b"\x17\x00\x00\x00\x00\x01\x42\xc0\x1e\xff\xe1\x00\x04\x67\x42\xc0\x1e\x01\x00\x02\x68\xce"
AUDIO_SH = b"\xaf\x00\x12\x10"
KEYFRAME = b"\x17\x01\x00\x00\x00" + bytes(400)
AUDIO = b"\xaf\x01" + bytes(60)


def connect_close(port, i):
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


def connect_reset(port, i):
    reset(socket.create_connection(("127.0.0.1", port), timeout=5))


def half_handshake(port, i):
    s = nodelay(socket.create_connection(("127.0.0.1", port), timeout=5))
    s.sendall(b"\x03" + bytes(700))
    s.close()


def handshake_only(port, i):
    c = BadClient(port)
    c.handshake(complex_hs=bool(i % 2))
    c.sock.close()


def connected(port, i):
    c = BadClient(port)
    c.connect(f"rtmp://127.0.0.1:{port}/live")
    c.sock.close()


def play_close(port, i):
    c = rtmp_client(f"rtmp://127.0.0.1:{port}/live/livestream")
    assert c.play(), c.statuses
    c.close()


def play_read(port, i):
    c = rtmp_client(f"rtmp://127.0.0.1:{port}/live/livestream")
    assert c.play(), c.statuses
    assert c.pump_until(lambda: len(c.media) >= 20, 15), len(c.media)
    c.close()


def play_stall_reset(port, i):
    """A player that never reads its GOP (the server's send buffer fills), then resets."""
    c = rtmp_client(f"rtmp://127.0.0.1:{port}/live/livestream")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert c.play(), c.statuses
    time.sleep(0.05)
    reset(c.sock)


def play_nobody(port, i):
    """A player of a stream nobody publishes (its source must go when it leaves)."""
    c = rtmp_client(f"rtmp://127.0.0.1:{port}/live/nobody{i}")
    assert c.play(), c.statuses
    c.close()


def publish_close(port, i):
    c = BadClient(port)
    cs = c.connect(f"rtmp://127.0.0.1:{port}/live", ("publish", f"cycle{i}"))
    for type_id, payload in ((9, VIDEO_SH), (8, AUDIO_SH), (9, KEYFRAME), (8, AUDIO)):
        cs.send_media(type_id, 0, payload)
    c.send(cs.data_to_send())
    (reset if i % 2 else socket.socket.close)(c.sock)


CYCLE_KINDS = [connect_close, connect_reset, half_handshake, handshake_only, connected,
               play_close, play_read, play_stall_reset, play_nobody, publish_close]


def run_cycles(port, numbers):
    """Run cycle kind i % len(CYCLE_KINDS) for every i, CYCLE_THREADS at a time: the failures."""
    def one(i):
        kind = CYCLE_KINDS[i % len(CYCLE_KINDS)]
        try:
            kind(port, i)
        except (OSError, AssertionError) as e:
            return f"{kind.__name__} #{i}: {e!r}"
        return None
    with ThreadPoolExecutor(CYCLE_THREADS) as pool:
        return [f for f in pool.map(one, numbers) if f]


def test_connect_play_disconnect_cycles_leave_nothing(server_factory, media_file,
                                                      publisher_factory):
    srv = start(server_factory, "origin")
    pub = publish(srv, publisher_factory, media_file)
    time.sleep(QUEUE_LENGTH + 1)       # the shared log reaches its steady size
    assert run_cycles(srv.port, range(CYCLE_WARMUP)) == []
    steady = {"sources": 1, "clients": 1, "connections": 1}     # the publisher
    assert wait_for(lambda: all(runtime(srv)[k] == v for k, v in steady.items()), 10), runtime(srv)
    base = baseline(srv)

    t0 = time.time()
    failures = run_cycles(srv.port, range(CYCLE_WARMUP, CYCLE_WARMUP + CYCLES))
    took = time.time() - t0
    assert failures == [], failures[:10]

    now, over = back_to(srv, base)
    figures(f"{CYCLES} cycles in {took:.1f}s", base, now)
    assert not over, (over, base, now)
    assert now["rss_kb"] <= base["rss_kb"] + RSS_SLACK_KB, (base["rss_kb"], now["rss_kb"])
    assert pub.alive() and srv.alive()
    assert log_problems(srv) == []


# ---------------------------------------------------------------- edge ingest start/stop

def test_edge_ingest_start_stop_cycles(server_factory, media_file, publisher_factory):
    origin = start(server_factory, "origin")
    edge = start(server_factory, "edge", vhost=f"""
    cluster {{ mode remote; origin 127.0.0.1:{origin.port}; edge_idle_timeout 0.2; }}""")
    publish(origin, publisher_factory, media_file)
    edge_base, origin_base = baseline(edge), baseline(origin)
    reattached = 0

    def watch_once():                  # with tokens, which no log may show (hooks.redact)
        c = rtmp_client(edge.url(f"live?token={TOKEN}/livestream?token={TOKEN}&key={TOKEN}"))
        assert c.play(), c.statuses
        assert c.pump_until(lambda: any(t == 9 for t, _, _ in c.media), 15), len(c.media)
        c.close()

    for i in range(EDGE_CYCLES):
        watch_once()
        if i % 5 == 4:                 # a new player inside the grace period keeps the link
            watch_once()
            reattached += 1
        assert wait_for(lambda: runtime(edge)["sources"] == 0, 15), (i, runtime(edge))

    now, over = back_to(edge, edge_base)
    figures(f"edge after {EDGE_CYCLES} ingest cycles", edge_base, now)
    assert not over, (over, edge_base, now)
    origin_now, origin_over = back_to(origin, origin_base,
                                      slack={"clients": 0, "connections": 0, "sources": 0})
    assert not origin_over, (origin_over, origin_base, origin_now)
    stops = edge.log_text().count("stop pulling")
    links = origin.log_text().count("play __defaultVhost__/live/livestream")
    assert stops == EDGE_CYCLES, stops
    assert EDGE_CYCLES <= links <= EDGE_CYCLES + reattached, links
    assert log_problems(origin, edge) == []
    assert TOKEN not in origin.log_text() + edge.log_text()


# ---------------------------------------------------------------- slow clients, RTMP and HTTP

def wait_closed(socks, deadline):
    """Read every socket until EOF/reset or `deadline`: {socket: (time it closed, what it
    received)} for those the server closed."""
    closed, got = {}, {s: b"" for s in socks}
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while len(closed) < len(socks) and time.time() < deadline:
        for key, _ in sel.select(timeout=max(0.0, min(0.5, deadline - time.time()))):
            try:
                data = key.fileobj.recv(65536)
                if data:
                    got[key.fileobj] += data[:64 - len(got[key.fileobj])]
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            closed[key.fileobj] = (time.time(), got[key.fileobj])
            sel.unregister(key.fileobj)
    sel.close()
    return closed


HTTP_FLV = "http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }"
BAD_HTTP = [   # (request head, statuses that refuse it)
    (f"GET /live/livestream.flv HTTP/1.1\r\nHost: t\r\nX-Big: {'b' * 20000}\r\n\r\n", {431}),
    ("GET /live/livestream.flv HTTP/1.1\r\nHost: t\r\n"
     + "".join(f"X-H{i}: v\r\n" for i in range(200)) + "\r\n", {431}),
    (f"GET /{'a' * 9000} HTTP/1.1\r\nHost: t\r\n\r\n", {414}),
    ("GET /../../etc/passwd HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", {400, 403, 404}),
    ("GET /live/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
     {400, 403, 404}),
    ("GET /live/livestream.flv%00.ts HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
     {400, 403, 404}),
    ("GET /live/nobody.flv HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", {404}),
    ("GARBAGE\r\n\r\n", {400}),
]


def test_slow_clients_are_closed_while_players_play(server_factory, media_file,
                                                    publisher_factory, player_factory):
    srv = start(server_factory, "origin", vhost=HTTP_FLV, http=True)
    publish(srv, publisher_factory, media_file)
    rtmp = RtmpWatcher(srv.url()).start()
    flv = FlvWatcher(srv.http_port, f"/live/livestream.flv?token={TOKEN}").start()
    ffmpeg = player_factory(srv.url(), 12)
    base = runtime(srv)
    since = time.time()

    def slow_rtmp(first):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        if first:
            s.send(first)
        return s, time.time()

    rtmp_slow = [slow_rtmp(b"\x03") for _ in range(SLOW_RTMP_BYTE)]
    rtmp_slow += [slow_rtmp(b"") for _ in range(SLOW_RTMP_SILENT)]
    http_slow = []
    for i in range(SLOW_HTTP):
        s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=5)
        s.sendall(b"GET /live/livestream.flv HTTP/1.1\r\nHost: t\r\n")
        http_slow.append((s, time.time()))
    peak = runtime(srv)

    refused = [(head[:40], status) for head, ok in BAD_HTTP
               for status in [raw_request(srv.http_port, head.encode("latin-1"))[0]]
               if status not in ok]
    assert refused == [], refused
    FlvWatcher(srv.http_port, "/live/livestream.flv").start().stop()   # new players still start

    # RTMP slowloris: closed by the server at HANDSHAKE_TIMEOUT; the HTTP heads trickle on.
    closed_rtmp = wait_closed([s for s, _ in rtmp_slow], time.time() + HANDSHAKE_TIMEOUT + 5)
    rtmp_after = [round(closed_rtmp[s][0] - t, 1) if s in closed_rtmp else None
                  for s, t in rtmp_slow]
    assert all(a is not None and HANDSHAKE_TIMEOUT - 1 < a < HANDSHAKE_TIMEOUT + 4
               for a in rtmp_after), rtmp_after
    mid = runtime(srv)
    ffmpeg.wait(timeout=30)

    # HTTP slow heads: one more header line every 5 s; 408 at HEAD_TIMEOUT all the same.
    for _ in range(int(HEAD_TIMEOUT // 5)):
        if time.time() > http_slow[0][1] + HEAD_TIMEOUT - 6:
            break
        for s, _ in http_slow:
            s.sendall(b"X-Slow: 1\r\n")
        time.sleep(5)
    answers = wait_closed([s for s, _ in http_slow], http_slow[-1][1] + HEAD_TIMEOUT + 5)
    http_after = sorted((round(answers[s][0] - t, 1), answers[s][1][:12]) if s in answers
                        else (None, b"") for s, t in http_slow)
    for s, _ in rtmp_slow + http_slow:
        s.close()
    assert all(a is not None and HEAD_TIMEOUT - 1 < a < HEAD_TIMEOUT + 4
               and data == b"HTTP/1.1 408" for a, data in http_after), http_after

    harm = rtmp.verdict(since) + flv.verdict(since)
    rtmp.stop(), flv.stop()
    assert harm == [], harm
    assert ffmpeg.has_video and ffmpeg.has_audio, ffmpeg.stderr
    assert ffmpeg.frames >= 0.9 * 12 * 25, (ffmpeg.frames, ffmpeg.stderr)
    log = srv.log_text()
    assert log.count(f"no handshake/connect in {HANDSHAKE_TIMEOUT:g}s") == len(rtmp_slow)
    print(f"slow clients: connections {base['connections']} -> {peak['connections']} (peak) -> "
          f"{mid['connections']} after {HANDSHAKE_TIMEOUT:g}s; sockets {base['sockets']} -> "
          f"{peak['sockets']} -> {mid['sockets']}")
    now, over = back_to(srv, base)
    figures("slow clients", base, now)
    assert not over, (over, base, now)
    assert now["rss_kb"] <= base["rss_kb"] + RSS_SLACK_KB, (base["rss_kb"], now["rss_kb"])
    assert log_problems(srv) == []
    assert TOKEN not in log


# ---------------------------------------------------------------- connection flood

def test_max_connections_holds_under_flood(server_factory, media_file, publisher_factory):
    srv = start(server_factory, "origin", top=f"max_connections {FLOOD_MAX};")
    publish(srv, publisher_factory, media_file)
    player = RtmpWatcher(srv.url()).start()
    base = runtime(srv)
    assert base["connections"] == 2
    since = time.time()

    flood = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(FLOOD)]
    refused = wait_closed(flood, time.time() + 3)
    peak = runtime(srv)
    held = [s for s in flood if s not in refused]
    assert peak["connections"] <= FLOOD_MAX, peak
    assert len(held) == FLOOD_MAX - base["connections"], (len(held), len(refused))
    assert {data for _, data in refused.values()} == {b""}    # closed at accept, unread
    log = srv.log_text()
    lines = [f"refuse 127.0.0.1:{s.getsockname()[1]}: max_connections {FLOOD_MAX} reached"
             for s in refused]
    assert [line for line in lines if log.count(line) != 1] == []
    assert log.count(f"max_connections {FLOOD_MAX} reached") == len(refused)

    # A new client now is refused too; once the flood goes, clients are accepted again.
    late = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    assert wait_closed([late], time.time() + 3)
    late.close()
    for s in flood:
        s.close()
    now, over = back_to(srv, base)
    assert not over, (over, base, now)
    c = rtmp_client(srv.url())
    assert c.play() and c.pump_until(lambda: any(t == 9 for t, _, _ in c.media), 15)
    c.close()
    harm = player.verdict(since)
    player.stop()
    assert harm == [], harm
    print(f"flood: {FLOOD} connections: held {len(held)} (+{base['connections']} before), "
          f"refused {len(refused)}, peak connections {peak['connections']}")
    assert log_problems(srv) == []


# ---------------------------------------------------------------- live fuzz

def fuzz_session(port, blob, cuts, rst):
    """Send one mutated session as its recorded reads, read the answer a while, hang up."""
    try:
        s = nodelay(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError as e:
        return f"connect: {e}"
    try:
        for piece in _pieces(blob, cuts):
            s.sendall(piece)
        deadline = time.time() + FUZZ_READ
        while time.time() < deadline:
            s.settimeout(max(0.01, deadline - time.time()))
            if not s.recv(65536):
                break
    except OSError:
        pass                           # the server closed or reset us: fine
    finally:
        (reset if rst else socket.socket.close)(s)
    return None


def fuzz_jobs(capture, count):
    """`count` mutants of what ffmpeg sent to publish and to play (deterministic)."""
    seeds = [capture["publish_c2s"], capture["play_c2s"]]
    jobs = []

    @settings(FUZZ, max_examples=count, derandomize=True, database=None,
              phases=[Phase.generate])
    @given(data=st.data())
    def draw(data):
        jobs.append(data.draw(mutants(seeds)))

    draw()
    return jobs


def run_fuzz(jobs, servers):
    """Each job to the next server in turn, FUZZ_PARALLEL at a time (every third one resets)."""
    def one(numbered):
        n, (blob, cuts) = numbered
        return fuzz_session(servers[n % len(servers)].port, blob, cuts, n % 3 == 0)
    with ThreadPoolExecutor(FUZZ_PARALLEL) as pool:
        return [e for e in pool.map(one, enumerate(jobs)) if e]


def test_live_fuzz_origin_and_edge_players_unharmed(server_factory, media_file,
                                                    publisher_factory, player_factory, capture):
    origin = start(server_factory, "origin")
    edge = start(server_factory, "edge", vhost=f"""
    cluster {{ mode remote; origin 127.0.0.1:{origin.port}; edge_idle_timeout 0.5; }}""")
    publish(origin, publisher_factory, media_file, "live/feed")
    jobs = fuzz_jobs(capture, FUZZ_SESSIONS)
    assert len(jobs) >= FUZZ_SESSIONS * 2 // 3, len(jobs)
    warm, jobs = jobs[:FUZZ_PARALLEL * 2], jobs[FUZZ_PARALLEL * 2:]

    # Warm-up: a first round of fuzz sessions; the baselines once nothing but the feed is left.
    time.sleep(QUEUE_LENGTH + 1)
    assert run_fuzz(warm, (origin, edge)) == []
    idle = {origin: {"sources": 1, "clients": 1}, edge: {"sources": 0, "clients": 0}}
    for s, want in idle.items():
        assert wait_for(lambda: all(runtime(s)[k] == v for k, v in want.items()), 10), \
            (s.dir.name, runtime(s))
    bases = {s: baseline(s) for s in (origin, edge)}

    watchers = [RtmpWatcher(origin.url("live/feed")).start(),
                RtmpWatcher(edge.url("live/feed")).start()]
    ffmpeg = player_factory(edge.url("live/feed"), FUZZ_PLAY)
    since = t0 = time.time()
    errors = run_fuzz(jobs, (origin, edge))
    took = time.time() - t0
    harm = [p for w in watchers for p in w.verdict(since)]
    for w in watchers:
        w.stop()
    ffmpeg.wait(timeout=40)
    assert errors == [], errors[:5]
    assert harm == [], harm
    assert ffmpeg.has_video and ffmpeg.has_audio, ffmpeg.stderr
    assert ffmpeg.frames >= 0.9 * FUZZ_PLAY * 25, (ffmpeg.frames, ffmpeg.stderr)
    assert origin.alive() and edge.alive()
    for s in (origin, edge):
        now, over = back_to(s, bases[s])
        figures(f"{s.dir.name} after {len(jobs)} fuzz sessions in {took:.1f}s", bases[s], now)
        assert not over, (s.dir.name, over, bases[s], now)
        assert now["rss_kb"] <= bases[s]["rss_kb"] + RSS_SLACK_KB, (s.dir.name, bases[s], now)
    assert log_problems(origin, edge) == []
