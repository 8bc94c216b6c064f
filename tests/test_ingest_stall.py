"""One publisher cannot stall the event loop (issue 20 point 10).

A hostile publisher sends tiny RTMP messages as fast as it can: 1-byte fmt-3 chunks, each a
zero-length audio message (65,536 messages per 64 KB read), 2-byte ones carrying one byte of
audio, or aggregates of 1-byte audio tags. Before the fix the server handled every message of a read inside the event loop's io
callback: 100-200 ms of work per read, sustained, during which no other socket was served.
Now empty messages are dropped by the chunk reader (as SRS) and a read's messages are handled
MEDIA_PER_STEP at a time (an aggregate, of at most MAX_AGGREGATE_TAGS, ends a step), the loop
serving everything else between steps.

The oracle is the loop's lag: a probe greenlet in the server's hub wakes every millisecond and
records the CPU time the server's thread used since its previous turn, i.e. the longest work
the loop did without serving anyone else. CPU time, not wall time, so the machine's load (2
shared cores) does not count; compared with a baseline taken just before in the same server.
Both chunk readers: the C one (when built) and the pure-Python one.
"""
import gc
import subprocess
import sys
import threading
import time

import gevent
import pytest

from lib.rtmp import chunk, session
from lib.rtmp.message import MAX_AGGREGATE_TAGS
from lib.server.rtmp import connection
from tests.conftest import wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_http import ServerThread
from tests.test_nothing_lost import AUDIO_SH, publisher

CONF = """
listen 127.0.0.1:0;
srs_log_tank console;
http_server { enabled on; listen 127.0.0.1:0; dir {www}; }
vhost __defaultVhost__ { min_latency on; tcp_nodelay on; play { mw_latency 0; } }
"""
ROOT = __file__.rsplit("/tests/", 1)[0]
BASELINE_SECONDS = 0.5
ATTACK_SECONDS = 1.5
MIN_READ = 250_000               # the attack is measured at least until the server read this
MAX_ADDED_LAG = 0.010            # "a few ms" of CPU the loop may spend without a turn for others


def audio_header(length):
    """A fmt-0 chunk header for an audio message of `length` bytes on csid 4, stream 1."""
    return (b"\x04" + (0).to_bytes(3, "big") + length.to_bytes(3, "big") + b"\x08"
            + (1).to_bytes(4, "little"))


def aggregates(chunk_size):
    """Aggregate messages of as many 1-byte audio tags as one may hold, ~64 KB of them."""
    tag = b"\x08\x00\x00\x01" + bytes(7) + b"\xaf" + (12).to_bytes(4, "big")
    one = chunk.encode_message(4, 22, 1, 0, tag * MAX_AGGREGATE_TAGS, chunk_size)
    return one * (65536 // len(one) + 1)


ATTACKS = {      # name: (first bytes, bytes sent again and again), for the publisher's chunk size
    # each fmt-3 byte starts (and ends) a new zero-length audio message
    "empty": lambda chunk_size: (audio_header(0), b"\xc4" * 65536),
    # each fmt-3 header + 1 byte is a whole 1-byte audio message
    "one-byte": lambda chunk_size: (audio_header(1) + b"\xaf", b"\xc4\xaf" * 32768),
    # aggregates of 1-byte audio tags: one message, up to MAX_AGGREGATE_TAGS media
    "aggregate": lambda chunk_size: (b"", aggregates(chunk_size)),
}


def attack(url, name):
    """The attacker's process: publish, send one real audio message (the ingest hot path is
    used from the first media on), then flood until killed."""
    pub = publisher(url)
    pub.send_media(8, 0, AUDIO_SH)
    first, flood = ATTACKS[name](pub.session.out_chunk_size)
    pub.sock.sendall(first)
    print("flooding", flush=True)
    while True:
        pub.sock.sendall(flood)


class LoopProbe:
    """A server plugin: from server start, a greenlet in the server's hub records, at each of
    its turns (every millisecond), the CPU time the thread used since its previous turn, less
    the time the garbage collector ran in it meanwhile (a process-wide pause, reported apart:
    `gc_worst`; in a process as big as pytest's a full collection takes ~25 ms)."""

    def __init__(self):
        self.gaps = []
        self.gc_gaps = []
        self.gc_time = 0.0
        self._gc_start = 0.0
        self.thread = None

    def on_server_start(self):
        self.thread = threading.get_ident()
        gc.callbacks.append(self._gc)
        gevent.spawn(self._run)

    def close(self):
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    def _gc(self, phase, info):
        if threading.get_ident() == self.thread:
            if phase == "start":
                self._gc_start = time.thread_time()
            else:
                self.gc_time += time.thread_time() - self._gc_start

    def _run(self):
        last, last_gc = time.thread_time(), self.gc_time
        while True:
            gevent.sleep(0.001)
            now, gc_now = time.thread_time(), self.gc_time
            self.gc_gaps.append(gc_now - last_gc)
            self.gaps.append(now - last - (gc_now - last_gc))
            last, last_gc = now, gc_now

    def worst(self, seconds, until=lambda: True, timeout=30):
        """The longest gap over the next `seconds` (and then until `until()`, at most
        `timeout`), and the longest gc time in one gap."""
        start = len(self.gaps)
        time.sleep(seconds)
        wait_for(until, timeout)
        end = len(self.gaps)
        return max(self.gaps[start:end]), max(self.gc_gaps[start:end])


def drain(client):
    """A player of the attacker's stream that reads and drops everything (flushes count too)."""
    sock = client.sock
    sock.settimeout(5)
    try:
        while sock.recv(1 << 20):
            pass
    except OSError:
        pass


@pytest.fixture
def server_gc():
    """The collector as the server runs it (lib/server/process/gctune.py freezes what lives as
    long as the process): here that is pytest's whole heap, which a full collection in the
    in-process server would otherwise walk while the probe measures."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.parametrize("reader", ["c", "python"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.usefixtures("server_gc")
def test_a_flooding_publisher_does_not_stall_the_loop(monkeypatch, tmp_path, reader, name):
    if reader == "c" and chunk.IMPLEMENTATION != "c":
        pytest.skip("C chunk reader not built (scripts/build_accel.py)")
    if reader == "python":
        monkeypatch.setattr(session, "ChunkReader", chunk.PureChunkReader)
        monkeypatch.setattr(connection, "RECV_SIZE", getattr(connection, "RECV_SIZES", {}).get(
            "python", connection.RECV_SIZE))
    probe = LoopProbe()
    srv = ServerThread(CONF.replace("{www}", str(tmp_path)), plugins=[probe]).start()
    attacker = None
    try:
        url = f"rtmp://127.0.0.1:{srv.rtmp_port}/live/attacker"
        player = RtmpTestClient(url)
        assert player.pump_until(lambda: player.session.state == "connected")
        assert player.play()
        threading.Thread(target=drain, args=(player,), daemon=True).start()
        def received():
            return max((c.bytes_in for c in list(srv.server.clients.values())
                        if getattr(c, "role", None) == "publish"), default=0)

        baseline, _ = probe.worst(BASELINE_SECONDS)
        attacker = subprocess.Popen([sys.executable, "-c", "import sys; from tests.test_ingest_stall "
                                     "import attack; attack(*sys.argv[1:])", url, name],
                                    cwd=ROOT, stdout=subprocess.PIPE)
        assert attacker.stdout.readline() == b"flooding\n"
        attacked, gc_worst = probe.worst(ATTACK_SECONDS, lambda: received() > MIN_READ)
        print(f"{reader}/{name}: loop lag (CPU) baseline {baseline * 1000:.1f} ms, "
              f"attacked {attacked * 1000:.1f} ms (+ gc up to {gc_worst * 1000:.1f} ms); "
              f"the server read {received() / 1e6:.1f} MB")
        assert attacked - baseline < MAX_ADDED_LAG, (
            f"one publisher held the loop for {attacked * 1000:.0f} ms of CPU")
        assert received() > MIN_READ, "the attacker's bytes were not read"
        player.close()
    finally:
        if attacker is not None:
            attacker.kill()
            attacker.wait()
        srv.stop()
        probe.close()
