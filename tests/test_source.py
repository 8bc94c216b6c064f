"""Source/Consumer fan-out in-process over real socketpairs (gevent hub, no monkey-patching)."""
import socket
from types import SimpleNamespace

import gevent

from lib.media import flv
from lib.rtmp.chunk import ChunkReader
from lib.server.core.consumer import Consumer
from lib.server.core.source import PySource, Source, SourceRegistry

AVC_SH = b"\x17\x00\x00\x00\x00" + b"\x01\x42\x00\x1e\xff\xe1\x00\x04sps!\x01\x00\x02pp"
AAC_SH = b"\xaf\x00\x12\x10"


def vhost_conf(queue_length=1.0, mw_latency=0):
    play = SimpleNamespace(queue_length=queue_length, mw_latency=mw_latency, time_jitter="full",
                           gop_cache=True, gop_cache_max_frames=2500)
    return SimpleNamespace(play=play, chunk_size=60000)


def frame(i, size=3000):
    key = i % 25 == 0
    return (b"\x17\x01" if key else b"\x27\x01") + b"\x00\x00\x00" + bytes([i & 0xFF]) * size


def pair(sndbuf=None):
    a, b = socket.socketpair()
    if sndbuf:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    a.setblocking(False)
    b.settimeout(0.02)
    return a, b


def drain(sock, reader, types=(8, 9)):
    out = []
    while True:
        try:
            data = sock.recv(1 << 20)
        except (socket.timeout, BlockingIOError):
            return out
        if not data:
            return out
        out.extend(m for m in reader.feed(data) if m.type_id in types)


def publish(src, frames, start=0):
    for i in range(start, start + frames):
        src.on_media(9, i * 40, frame(i))
        src.on_media(8, i * 40 + 5, b"\xaf\x01" + b"a" * 200)


def test_same_bytes_for_every_consumer_and_order_kept():
    reg = SourceRegistry()
    src = reg.fetch_or_create("v/a/s", "v", "a", "s", vhost_conf(queue_length=10))
    src.on_publish(object())
    src.on_media(9, 0, AVC_SH)
    src.on_media(8, 0, AAC_SH)
    socks = [pair() for _ in range(3)]
    consumers = [Consumer(a) for a, _ in socks]
    for c in consumers:
        src.attach(c)
    publish(src, 50)
    assert src.msgs[0].rtmp is src.logs["rtmp"][0]               # encoded once, shared
    src.flush_all()
    got = [drain(b, ChunkReader(60000)) for _, b in socks]
    assert got[0] == got[1] == got[2]
    video_ts = [m.timestamp for m in got[0] if m.type_id == 9]
    assert video_ts == sorted(video_ts) and len(video_ts) == 51  # sequence header + 50
    assert not src.msgs                   # all caught up: the log holds nothing any more


def test_the_gop_holds_a_payload_once_after_the_log_let_it_go_and_late_players_still_get_it():
    for cls in (PySource, Source):
        src = SourceRegistry(source_class=cls).fetch_or_create("v/a/s", "v", "a", "s",
                                                                vhost_conf(queue_length=10))
        src.on_publish(object())
        src.on_media(9, 0, AVC_SH)
        src.on_media(8, 0, AAC_SH)
        a, b = pair()
        src.attach(Consumer(a))
        publish(src, 30)                  # keyframe at frame 25
        assert all(m._rtmp is not None for m in src.gop.items)     # in the log: encoded
        src.flush_all()
        drain(b, ChunkReader(60000))
        assert not src.msgs and src.gop.items                     # all sent: the log let go
        assert all(m._rtmp is None and m._flv is None for m in src.gop.items), cls
        late_a, late_b = pair()
        src.attach(Consumer(late_a))      # made again for a player that starts from the GOP
        got = [m for m in drain(late_b, ChunkReader(60000)) if m.type_id == 9]
        assert [m.payload for m in got] == [AVC_SH] + [frame(i) for i in range(25, 30)], cls


def test_late_consumer_starts_with_headers_and_gop():
    reg = SourceRegistry()
    src = reg.fetch_or_create("v/a/s", "v", "a", "s", vhost_conf())
    src.on_publish(object())
    src.on_media(18, 0, b"\x02\x00\x0aonMetaData\x03\x00\x00\x09")
    src.on_media(9, 0, AVC_SH)
    src.on_media(8, 0, AAC_SH)
    publish(src, 30)                      # keyframe at frame 25
    a, b = pair()
    c = Consumer(a)
    src.attach(c)
    msgs = drain(b, ChunkReader(60000))
    assert flv.is_video_sequence_header(msgs[0].payload)
    assert flv.is_audio_sequence_header(msgs[1].payload)
    first_frame = next(m for m in msgs[2:] if m.type_id == 9)
    assert flv.is_video_keyframe(first_frame.payload) and first_frame.payload[-1] == 25


def test_stuck_consumer_is_shed_to_keyframe_and_never_slows_others():
    reg = SourceRegistry()
    src = reg.fetch_or_create("v/a/s", "v", "a", "s", vhost_conf(queue_length=1.0))
    src.on_publish(object())
    src.on_media(9, 0, AVC_SH)
    src.on_media(8, 0, AAC_SH)
    slow_a, slow_b = pair(sndbuf=4096)
    fast_a, fast_b = pair()
    slow, fast = Consumer(slow_a), Consumer(fast_a)
    src.attach(slow)
    src.attach(fast)
    fast_reader, fast_got = ChunkReader(60000), []
    for second in range(10):              # 10 s of media; the slow player reads nothing
        publish(src, 25, start=second * 25)
        src.flush_all()
        gevent.sleep(0)
        fast_got += drain(fast_b, fast_reader)
    assert slow.blocked
    assert len(src.msgs) < 200            # the shared log holds ~queue_length, not 10 s
    fast_video = [m.timestamp for m in fast_got if m.type_id == 9]
    assert len(fast_video) == 251 and fast_video == sorted(fast_video)
    # the slow player wakes up: it drains what was in flight, then jumps to a fresh keyframe
    slow_reader, slow_got = ChunkReader(60000), []
    for _ in range(50):
        slow_got += drain(slow_b, slow_reader)
        gevent.sleep(0.01)
        src.flush_all()
    publish(src, 25, start=250)
    for _ in range(20):
        src.flush_all()
        gevent.sleep(0.01)
        slow_got += drain(slow_b, slow_reader)
    video = [m for m in slow_got if m.type_id == 9]
    stamps = [m.timestamp for m in video]
    assert stamps == sorted(stamps)
    assert slow.dropped > 100 and src.dropped >= slow.dropped
    jump = max(b - a for a, b in zip(stamps, stamps[1:]))
    assert jump > 1000                    # skipped the backlog...
    after = video[[b - a for a, b in zip(stamps, stamps[1:])].index(jump) + 1:]
    assert flv.is_video_sequence_header(after[0].payload)   # ...with fresh headers...
    assert flv.is_video_keyframe(after[1].payload)          # ...then a keyframe
    assert stamps[-1] == 274 * 40


def test_data_messages_never_shed_a_caught_up_player():
    """Issue 14 defect 1: a data message used to enter the shared log at timestamp 0, so a
    flush starting at it made a caught-up player look queue_length behind (it was shed to the
    newest keyframe and lost frames). Flushing right after every data message exposes it."""
    from lib.rtmp import amf0
    reg = SourceRegistry()
    src = reg.fetch_or_create("v/a/s", "v", "a", "s", vhost_conf(queue_length=1))
    src.on_publish(object())
    src.on_media(9, 0, AVC_SH)
    a, b = pair()
    c = Consumer(a)
    src.attach(c)
    reader = ChunkReader(60000)
    got = []
    for i in range(200):                       # 8 s of media, queue_length 1 s
        # a flush batch that starts with data and ends with media
        src.on_media(18, 0, amf0.encode("onMetaData", {"i": float(i)}))
        src.on_media(18, 0, amf0.encode("onCuePoint", {}))
        src.on_media(9, i * 40, frame(i))
        src.flush_all()
        got.extend(drain(b, reader))
    frames = [m.payload[5] for m in got if m.type_id == 9 and m.payload[1] == 1]
    assert frames == [i & 0xFF for i in range(200)], f"{len(frames)} of 200 frames"
    assert c.dropped == 0 and src.dropped == 0
    assert src.metadata is not None and amf0.decode_all(src.metadata.payload)[1] == {"i": 199.0}


def test_log_follows_the_slowest_consumer_and_encodes_only_kinds_in_use():
    """Issue 16: the shared log keeps what a blocked consumer has not taken (its cursor), not
    queue_length of every stream; FLV tags are made only once an FLV consumer attaches."""
    reg = SourceRegistry()
    src = reg.fetch_or_create("v/a/s", "v", "a", "s", vhost_conf(queue_length=30))
    src.on_publish(object())
    src.on_media(9, 0, AVC_SH)
    fast_a, fast_b = pair()
    src.attach(Consumer(fast_a))
    publish(src, 10)
    assert src.msgs and all(m._flv is None for m in src.msgs)   # no HTTP-FLV player: no tags
    src.flush_all()
    drain(fast_b, ChunkReader(60000))
    assert src.msgs == []                 # everyone took everything
    slow_a, slow_b = pair(sndbuf=4096)
    slow = Consumer(slow_a)
    src.attach(slow)
    for second in range(3):
        publish(src, 25, start=10 + second * 25)
        src.flush_all()
        gevent.sleep(0)
        drain(fast_b, ChunkReader(60000))
    assert slow.blocked
    assert src.base <= slow.cursor < src.end     # its place is still in the log
    flv_a, flv_b = pair()
    src.attach(Consumer(flv_a, kind="flv"))
    assert len(src.logs["flv"]) == len(src.msgs)  # the log's messages got tags, once each
    assert all(m._flv is not None for m in src.msgs)


def test_mw_msgs_holds_a_flush_until_more_than_mw_msgs_are_new():
    """SRS's play.mw_msgs: at mw_latency 0 a flush waits for more than mw_msgs new messages."""
    conf = vhost_conf(queue_length=10, mw_latency=0)
    conf.play.mw_msgs = 8
    reg = SourceRegistry()
    src = reg.fetch_or_create("v/a/s", "v", "a", "s", conf)
    src.on_publish(object())
    src.on_media(9, 0, AVC_SH)
    a, b = pair()
    src.attach(Consumer(a))
    reader = ChunkReader(60000)
    drain(b, reader)
    for i in range(4):                    # 8 messages: not yet
        src.on_media(9, i * 40, frame(i))
        src.on_media(8, i * 40 + 5, b"\xaf\x01" + b"a" * 200)
    gevent.sleep(0.1)
    assert drain(b, reader) == []
    src.on_media(9, 160, frame(4))        # the 9th: flushed at once
    got = []
    deadline = 50
    while len(got) < 9 and deadline:
        gevent.sleep(0.01)
        got += drain(b, reader)
        deadline -= 1
    assert len(got) == 9
    src.on_media(9, 200, frame(5))        # a lone message waits at most MW_MSGS_WAIT
    got = []
    for _ in range(100):
        gevent.sleep(0.01)
        got += drain(b, reader)
        if got:
            break
    assert len(got) == 1
    src.stop()
