"""Per-player timestamps over shared bytes (issue 22 point 3): players that joined at different
GOPs, after a shed, a pause, a private message, on streams older than 4.6 hours, receive the
timestamps they received before (the source's minus the timestamp of the GOP they started at;
onMetaData at 0), decoded by both chunk readers (C and pure Python); and once in step, every
player sends the source's shared bytes themselves whatever its base.

The expectations are computed here from the timestamps the test publishes, not by the code under
test. tests/test_timebase_ffmpeg.py checks the same with ffprobe as the decoder."""
from types import SimpleNamespace

import pytest

from lib.media import flv
from lib.rtmp.chunk import ChunkReader, PureChunkReader, encode_message
from lib.server.core.consumer import Consumer
from lib.server.core.source import SourceRegistry

OLD = 5 * 3600 * 1000          # past 0xFFFFFF ms (4.66 hours)
META = b"\x02\x00\x0aonMetaData\x03\x00\x00\x09"


class PlayerSocket:
    """Takes every byte; keeps the iovecs of each sendmsg."""

    def __init__(self):
        self.sends = []

    def sendmsg(self, bufs):
        self.sends.append(list(bufs))
        return sum(map(len, bufs))

    def fileno(self):
        return -1

    def data(self):
        return b"".join(bytes(b) for bufs in self.sends for b in bufs)


def decode(sock, kind, chunk_size):
    """[(type, timestamp, payload)] a player decodes, with both chunk readers (they must agree)."""
    data = sock.data()
    if kind == "flv":
        return [(t, ts, p) for t, ts, p in flv.iter_tags(flv.file_header() + data)]
    got = []
    for reader in (ChunkReader(chunk_size), PureChunkReader(chunk_size)):
        msgs = reader.feed(data)
        assert all(m.stream_id == 1 for m in msgs)
        got.append([(m.type_id, m.timestamp, bytes(m.payload)) for m in msgs])
    assert got[0] == got[1]
    return got[0]


def media(seconds, start=0, gop_ms=1000, big=300):
    """Interleaved (type, ts, payload): video every 40 ms (keyframe every gop_ms), AAC every
    23 ms, frames of `big` bytes (several chunks at chunk size 128) and small ones."""
    out = [(9, start, b"\x17\x00\x00\x00\x00vsh"), (8, start, b"\xaf\x00\x12\x10")]
    v = a = 0
    while v * 40 < seconds * 1000:
        if v * 40 <= a * 23:
            key = v * 40 % gop_ms == 0
            size = big if v % 3 == 0 else 20
            body = bytes([v & 0xFF]) * size
            out.append((9, start + v * 40, (b"\x17" if key else b"\x27") + b"\x01\x00\x00\x00" + body))
            v += 1
        else:
            out.append((8, start + a * 23, b"\xaf\x01" + bytes([a & 0xFF]) * (7 + a % 5)))
            a += 1
    return out


def make_source(jitter="full", chunk_size=128, old=False):
    play = SimpleNamespace(queue_length=1, mw_latency=350, mw_msgs=8, time_jitter=jitter,
                           gop_cache=True, gop_cache_max_frames=2500)
    src = SourceRegistry().fetch_or_create("v/a/s", "v", "a", "s",
                                           SimpleNamespace(play=play, chunk_size=chunk_size))
    src._flusher = object()        # no greenlet: the test flushes
    if old:                        # a source whose timeline is 5 hours old already
        src.jitter.started = True
        src.jitter.last_out = src.jitter.max_out = OLD
    src.on_publish(SimpleNamespace())
    src.on_media(18, 0, META)
    return src


class Run:
    """Feeds a source; players attach right after chosen keyframes. `expected[player]` is what
    it must decode: headers and the messages from its GOP on, at (ts - its base), never below 0;
    onMetaData at 0. Timestamps here are the published ones (the source's differ by a constant,
    which the player's base removes; in `off` mode base is 0 and they are the same)."""

    def __init__(self, src, kind="rtmp", off=False):
        self.src, self.kind, self.off = src, kind, off
        self.players = []           # (consumer, socket)
        self.expected = {}
        self.published = []
        self.gop_start = 0

    def player_ts(self, c, ts):
        return max(0, ts - c.test_base)

    def headers(self, c, ts):
        return [(18, 0, META), (9, self.player_ts(c, ts), self.src.video_sh.payload),
                (8, self.player_ts(c, ts), self.src.audio_sh.payload)]

    def attach(self):
        sock = PlayerSocket()
        c = Consumer(sock, self.kind)
        self.src.attach(c)
        self.players.append((c, sock))
        gop = self.published[self.gop_start:]
        c.test_base = 0 if self.off else gop[0][1]
        self.expected[c] = self.headers(c, gop[0][1])
        self.expected[c] += [(t, self.player_ts(c, ts), p) for t, ts, p in gop]
        return c

    def feed(self, msgs, flush_every=9, attach_at=()):
        for t, ts, p in msgs:
            self.src.on_media(t, ts, p)
            self.published.append((t, ts, p))
            for c, _ in self.players:
                if not c.paused and not c.blocked:
                    self.expected[c].append((t, self.player_ts(c, ts), p))
            if t == 9 and p[:2] == b"\x17\x01":
                self.gop_start = len(self.published) - 1
                if ts in attach_at:
                    self.attach()
            if len(self.published) % flush_every == 0:
                self.src.flush_all()
        self.src.flush_all()

    def check(self, players=None):
        for c, sock in players or self.players:
            got = decode(sock, self.kind, self.src.chunk_size)
            want = self.expected[c]
            assert [(t, ts) for t, ts, _ in got] == [(t, ts) for t, ts, _ in want]
            assert got == want


@pytest.mark.parametrize("kind", ["rtmp", "flv"])
@pytest.mark.parametrize("old", [False, True])
@pytest.mark.parametrize("chunk_size", [128, 60000])
def test_players_joining_at_different_gops_get_their_own_timestamps(kind, old, chunk_size):
    src = make_source(chunk_size=chunk_size, old=old)
    run = Run(src, kind)
    run.feed(media(12), attach_at=(1000, 3000, 4000, 7000, 11000))
    assert len({c.timebase.base for c, _ in run.players}) == 5
    if old:
        assert src.jitter.max_out > 0xFFFFFF
    run.check()


def test_in_step_players_send_the_shared_bytes_whatever_their_base():
    """The point of it all: after its first messages, a player's flush is the source's log
    slice itself (the same objects), for players at five bases on a 5-hour-old stream."""
    src = make_source(old=True)
    run = Run(src)
    run.feed(media(12), attach_at=(1000, 3000, 4000, 7000, 11000))
    run.check()
    for _, sock in run.players:
        sock.sends.clear()
    shared = []
    src.on_media = record(src.on_media, shared, src)
    run.feed(media(3, start=12000)[2:], flush_every=9)
    assert len(shared) > 100
    for c, sock in run.players:
        assert c.unsynced == ()
        # every buffer it sent in these flushes is a shared log entry itself
        sent = [b for bufs in sock.sends for b in bufs]
        assert len(sent) == len(shared) and all(a is b for a, b in zip(sent, shared))


def record(on_media, shared, src):
    def wrapped(*args, **kw):
        on_media(*args, **kw)
        shared.append(src.logs["rtmp"][-1])
    return wrapped


@pytest.mark.parametrize("chunk_size", [128, 60000])
def test_time_jitter_off_across_the_extended_timestamp_line(chunk_size):
    """Base 0: players get the publisher's own timestamps, which cross 0xFFFFFF here; the first
    message per chunk stream is the player's own fmt 0 with an extended timestamp (repeated on
    continuation chunks), the rest the shared fmt 1 deltas."""
    src = make_source("off", chunk_size)
    run = Run(src, off=True)
    start = 0xFFFFFF - 3000
    run.feed(media(8, start=start), attach_at=(start + 1000, start + 3000, start + 5000))
    assert len(run.players) == 3
    run.check()


def test_after_a_shed_timestamps_continue_from_the_keyframe():
    src = make_source()
    run = Run(src)
    msgs = media(10)
    run.feed(msgs[:150], attach_at=(1000,))
    steady = run.players[0]
    slow = run.attach()
    # the slow player's socket is full for 4 s of media (its writer waits), then it is behind
    slow.blocked = True
    cut = next(i for i, m in enumerate(msgs) if m[1] >= msgs[150][1] + 4000 and m[0] == 9)
    run.feed(msgs[150:cut])
    slow.blocked = False
    slow.lagging = True
    taken = len(run.expected[slow])  # what it took before it stalled
    want = run.expected[slow][:taken]
    key = max(i for i, m in enumerate(run.published) if m[2][:2] == b"\x17\x01")
    run.feed(msgs[cut:cut + 40])
    assert slow.dropped > 0
    got = decode(run.players[1][1], "rtmp", src.chunk_size)
    kts = run.published[key][1]
    assert got[:taken] == want
    # then fresh headers at the keyframe's time, then every message from the keyframe on
    assert got[taken:taken + 3] == run.headers(slow, kts)
    assert got[taken + 3:] == [(t, run.player_ts(slow, ts), p) for t, ts, p in run.published[key:]]
    run.check([steady])


def test_pause_resume_and_private_bytes_keep_timestamps():
    src = make_source()
    run = Run(src)
    msgs = media(8)
    run.feed(msgs[:80], attach_at=(1000,))
    c, sock = run.players[0]
    # a private message on the video chunk stream (stream id 0, timestamp 999): the player's
    # next video message must still carry its own timestamp and stream id 1
    ping = encode_message(6, 4, 0, 999, b"\x00\x07\x00\x00\x00\x01", src.chunk_size)
    c.send_private(ping, src)
    run.feed(msgs[80:120])
    # pause while media goes on, then resume as the connection does
    c.paused = True
    run.feed(msgs[120:200])
    c.paused = False
    c.cursor = src.end
    c.pending.extend(src.start_bytes_for(c))
    gop = run.published[run.gop_start:]
    run.expected[c] += run.headers(c, gop[0][1])
    run.expected[c] += [(t, run.player_ts(c, ts), p) for t, ts, p in gop]
    c.flush(src)
    run.feed(msgs[200:])
    data = sock.data()
    got = []
    for reader in (ChunkReader(src.chunk_size), PureChunkReader(src.chunk_size)):
        msgs_out = reader.feed(data)
        got.append([(m.type_id, m.timestamp, m.stream_id, bytes(m.payload)) for m in msgs_out])
    assert got[0] == got[1]
    assert (4, 999, 0, b"\x00\x07\x00\x00\x00\x01") in got[0]
    media_got = [m for m in got[0] if m[0] != 4]
    assert all(m[2] == 1 for m in media_got)
    assert [(t, ts, p) for t, ts, _, p in media_got] == run.expected[c]


def test_timestamps_going_back_on_a_chunk_stream():
    """time_jitter off passes a publisher's step back: that message is the player's own fmt 0
    (a fmt 1 delta cannot go back), the ones after it shared deltas again."""
    src = make_source("off")
    run = Run(src, off=True)
    run.feed(media(4), attach_at=(1000,))
    before = src.end
    run.feed([(t, ts + 1500, p) for t, ts, p in media(4)[2:]])    # from 4000 back to 1500
    assert src.last_abs_seq >= before     # a fmt 0 message: the step back
    run.check()
