"""lib/server/core/_pumpc.c (SocketPump) and Receiver.stream_messages over real socket pairs:
Python runs only for reads that completed a message, the byte count stays current, and every
way a stream ends reaches the owner (EOF, bad bytes, a failing callback, a value to hand back).
Skipped when the accelerators are not built (the pure path is tested everywhere else)."""
import socket

import gevent
import pytest
from gevent import socket as gsocket

from lib.rtmp.errors import ChunkError
from lib.server.core import receiver as receiver_mod
from lib.server.core.receiver import Receiver

pytestmark = pytest.mark.skipif(receiver_mod.SocketPump is None,
                                reason="C accelerators not built (scripts/build_accel.py)")

AUDIO = 8


def ffmpeg_style(csid, type_id, ts, payload):
    """One message as ffmpeg writes it: a fmt-0 chunk header apart from its payload (chunk
    size 60000, so one chunk)."""
    header = (bytes([csid]) + ts.to_bytes(3, "big") + len(payload).to_bytes(3, "big")
              + bytes([type_id]) + (1).to_bytes(4, "little"))
    return header, payload


def make_pump(sock, on_messages, on_stop, size=65536):
    reader = receiver_mod._CChunkReader(chunk_size=60000)
    return reader, receiver_mod.SocketPump(reader, sock.fileno(), on_messages, on_stop, size)


def test_a_header_alone_costs_no_callback_and_the_payload_completes_the_message():
    a, b = socket.socketpair()
    b.setblocking(False)
    calls, stops = [], []
    reader, pump = make_pump(b, lambda msgs, n: calls.append((msgs, n)), lambda v, e: stops.append((v, e)))
    header, payload = ffmpeg_style(4, AUDIO, 40, b"\xaf\x01" + b"a" * 200)
    a.sendall(header)
    pump()
    assert calls == [] and pump.reads == 1        # read, parsed, nothing complete: no Python
    pump()                                        # nothing to read (EAGAIN): nothing happens
    assert calls == [] and pump.reads == 1
    a.sendall(payload)
    pump()
    assert len(calls) == 1 and stops == []
    msgs, n = calls[0]
    assert n == len(header) + len(payload)        # both reads' bytes, counted at the message
    assert [(m.type_id, m.timestamp, m.payload) for m in msgs] == [(AUDIO, 40, payload)]
    assert reader.bytes_received == n
    a.close()
    pump()
    assert stops == [(None, None)]                # EOF
    pump.close()
    b.close()


def test_bytes_that_complete_no_message_are_still_counted_every_size_bytes():
    a, b = socket.socketpair()
    b.setblocking(False)
    calls = []
    _, pump = make_pump(b, lambda msgs, n: calls.append((len(msgs), n)), lambda v, e: None, size=1000)
    header, _ = ffmpeg_style(4, AUDIO, 0, b"x" * 100000)       # a long message, sent in part
    a.sendall(header + b"x" * 2500)
    for _ in range(4):
        pump()
    assert calls == [(0, 1000), (0, 1000)]        # at least every `size` bytes, no message yet
    pump.close()
    a.close()
    b.close()


def test_bad_bytes_a_failing_callback_and_a_returned_value_stop_the_pump_once():
    for case in ("garbage", "raises", "returns"):
        a, b = socket.socketpair()
        b.setblocking(False)
        stops = []

        def on_messages(msgs, n):
            if case == "raises":
                raise ValueError("boom")
            return "back" if case == "returns" else None
        _, pump = make_pump(b, on_messages, lambda v, e: stops.append((v, e)))
        if case == "garbage":      # fmt 2 on a chunk stream that never had a header
            a.sendall(b"\x84" + b"\x00" * 3)
        else:
            a.sendall(b"".join(ffmpeg_style(4, AUDIO, 0, b"\xaf\x01zz")))
        pump()
        a.sendall(b"".join(ffmpeg_style(4, AUDIO, 20, b"\xaf\x01zz")))
        pump()                                    # stopped: does nothing more
        assert len(stops) == 1, case
        value, exc = stops[0]
        if case == "garbage":
            assert value is None and isinstance(exc, ChunkError)
        elif case == "raises":
            assert value is None and isinstance(exc, ValueError) and exc.__traceback__ is not None
        else:
            assert value == "back" and exc is None
        pump.close()
        a.close()
        b.close()


def test_stream_messages_returns_hand_backs_raises_errors_and_keeps_the_idle_bound():
    a, b = gsocket.socketpair()
    rx = Receiver(b)
    reader = receiver_mod._CChunkReader(chunk_size=60000)
    assert rx.can_pump(reader)
    assert not rx.can_pump(object())              # the pure reader: stream() instead
    seen = []

    def on_messages(msgs, n):
        seen.extend(m.timestamp for m in msgs)
        return "stop" if msgs[-1].timestamp >= 100 else None

    def writer():
        for ts in range(0, 120, 20):
            for part in ffmpeg_style(4, AUDIO, ts, b"\xaf\x01" + b"p" * 50):
                a.sendall(part)
                gevent.sleep(0.01)
    gevent.spawn(writer)
    assert rx.stream_messages(reader, on_messages) == "stop"
    assert seen == [0, 20, 40, 60, 80, 100]
    # the idle bound counts the pump's reads: bytes that complete nothing keep it alive
    rx.set_idle_timeout(0.6)
    header, _ = ffmpeg_style(4, AUDIO, 200, b"y" * 100000)

    def trickle():
        a.sendall(header)
        for _ in range(10):
            gevent.sleep(0.1)
            a.sendall(b"y" * 10)
    t = gevent.spawn(trickle)
    g = gevent.spawn(rx.stream_messages, reader, on_messages)
    t.join()
    assert not g.dead                             # 1 s of trickle: alive past the 0.6 s bound
    g.join(timeout=5)
    assert g.dead and isinstance(g.exception, socket.timeout)
    # bad bytes raise in the owner
    a.sendall(b"\x85" + b"\x00" * 3)              # fmt 2 on an unknown chunk stream
    rx.set_idle_timeout(None)
    with pytest.raises(ChunkError):
        rx.stream_messages(receiver_mod._CChunkReader(), on_messages)
    rx.close()
    a.close()
    b.close()


def test_media_path_takes_plain_media_within_its_budget_and_nothing_else():
    a, b = socket.socketpair()
    b.setblocking(False)
    calls, media, stops = [], [], []
    _, pump = make_pump(b, lambda msgs, n: calls.append(([m.timestamp for m in msgs], n)),
                        lambda v, e: stops.append((v, e)))
    pump.on_media = lambda t, ts, payload: media.append((t, ts, payload))
    payload = b"\xaf\x01" + b"a" * 100
    size = sum(map(len, ffmpeg_style(4, AUDIO, 0, payload)))
    pump.budget = 0                               # closed: the callback gets everything
    a.sendall(b"".join(ffmpeg_style(4, AUDIO, 0, payload)))
    pump()
    assert calls == [([0], size)] and media == []
    pump.budget = 3 * size + 1                    # open for three messages' bytes
    for ts in (20, 40, 60, 80):
        a.sendall(b"".join(ffmpeg_style(4, AUDIO, ts, payload)))
        pump()
    assert media == [(AUDIO, 20, payload), (AUDIO, 40, payload), (AUDIO, 60, payload)]
    assert calls[1:] == [([80], 4 * size)]        # the budget spent: all bytes since, counted
    assert pump.pending == 0
    # a read with anything but audio and video goes to the callback whole, nothing delivered
    del media[:]
    data = b"".join(ffmpeg_style(4, AUDIO, 100, payload)) + b"".join(ffmpeg_style(5, 18, 100, b"\x02x"))
    a.sendall(data)
    pump()
    assert media == [] and calls[-1] == ([100, 100], len(data))
    # a failing on_media stops the pump as a failing callback does
    def boom(t, ts, p):
        raise ValueError("boom")
    pump.on_media = boom
    a.sendall(b"".join(ffmpeg_style(4, AUDIO, 120, payload)))
    pump()
    assert len(stops) == 1 and isinstance(stops[0][1], ValueError)
    pump.close()
    a.close()
    b.close()


def test_a_publisher_gets_the_same_acknowledgements_and_source_with_or_without_the_media_path():
    """The real connection callback (RtmpConnection._messages_in_hub) over the pump with its
    media path, against the Python read (`_media_in_hub`) on the same bytes: the same
    acknowledgements at the same byte counts, the same byte count, the same source."""
    from types import SimpleNamespace

    from lib.rtmp import session as rs
    from lib.rtmp.chunk import ChunkReader
    from lib.server.core.source import SourceRegistry
    from lib.server.rtmp.connection import RtmpConnection

    def setup():
        play = SimpleNamespace(queue_length=30, mw_latency=350, time_jitter="full",
                               gop_cache=True, gop_cache_max_frames=2500)
        src = SourceRegistry().fetch_or_create("v/a/s", "v", "a", "s",
                                               SimpleNamespace(play=play, chunk_size=60000))
        sess = rs.ServerSession()
        sess.state = "publishing"
        sess.reader = ChunkReader(chunk_size=60000)
        sess.peer_window = 5000                   # an acknowledgement every 5000 bytes
        conn = SimpleNamespace(source=src, got_media=True, session=sess, bytes_in=0,
                               receiver=SimpleNamespace(_pump=None))
        for name in ("_step", "_messages_in_hub", "_media_in_hub"):
            setattr(conn, name, getattr(RtmpConnection, name).__get__(conn))
        src.on_publish(conn)
        return src, sess, conn

    def run_events(src, result):
        for ev in result or ():
            if type(ev) is rs.Media:
                src.on_media(ev.type_id, ev.timestamp, ev.payload)

    writes = []
    for i in range(300):
        t = 9 if i % 3 == 0 else AUDIO
        payload = (b"\x17\x01" if i % 60 == 0 else b"\x27\x01") + bytes(150 + i) if t == 9 \
            else b"\xaf\x01" + bytes(90)
        writes.extend(ffmpeg_style(6 if t == 9 else 4, t, i * 20, payload))
    # the Python read
    src_py, sess_py, conn_py = setup()
    acks_py = []
    for data in writes:
        run_events(src_py, conn_py._media_in_hub(data))
        out = sess_py.data_to_send()
        if out:
            acks_py.append((sess_py.reader.bytes_received, out))
    # the pump with its media path
    src_c, sess_c, conn_c = setup()
    acks_c = []
    a, b = socket.socketpair()
    b.setblocking(False)

    def on_messages(msgs, n):
        run_events(src_c, conn_c._messages_in_hub(msgs, n))
        return None
    pump = receiver_mod.SocketPump(sess_c.reader, b.fileno(), on_messages, lambda v, e: None)
    pump.on_media = src_c.on_media
    conn_c.receiver._pump = pump
    for data in writes:
        a.sendall(data)
        pump()
        out = sess_c.data_to_send()
        if out:
            acks_c.append((sess_c.reader.bytes_received, out))
    assert len(acks_py) >= sum(map(len, writes)) // 5000 - 1
    assert acks_c == acks_py
    assert conn_py.bytes_in == sum(map(len, writes))
    assert 0 < pump.pending < 5000                # counted at the next callback (the budget)
    assert conn_c.bytes_in + pump.pending == conn_py.bytes_in
    for field in ("end", "video_frames", "bytes_in", "last_key_seq"):
        assert getattr(src_c, field) == getattr(src_py, field), field
    assert [m.timestamp for m in src_c.gop.items] == [m.timestamp for m in src_py.gop.items]
    pump.close()
    a.close()
    b.close()
