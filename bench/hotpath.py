"""`python -m bench.hotpath [--seconds S] [--players N]`: the ingest hot path in one process,
without sockets, for instruction counts that do not depend on a busy machine:

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out .venv/bin/python -m bench.hotpath
    callgrind_annotate /tmp/cg.out | head -40

Rules: the bench media file is encoded once as a publisher sends it, then fed, write by write, through what a publishing
connection runs per read: RtmpConnection._media_in_hub (the chunk reader, then
Source.on_media for each audio/video message: GOP cache, jitter, shared log). `--players` attaches that many consumers on
socket pairs that are drained (0 by default: pure ingest). Prints the messages handled; the
setup (file parse, encoding) is the same for every tree, so instruction-count differences are
the hot path's. `--writes ffmpeg` (default): what the C pump hands Python for ffmpeg's load,
one completed message per read (chunk size 60000; ffmpeg's header-only reads stay in C);
`--writes bundled`: bench.pubgen's bundled mode (chunk size 4096, one write per 20 ms of media).
"""
import argparse
import socket
import sys
import time
from types import SimpleNamespace

from bench.procs import media_file
from bench.pubgen import CHUNK_SIZE, TICK_S, _CSID, load_tags
from lib.rtmp import session as rs
from lib.rtmp.chunk import encode_message
from lib.server.core.consumer import Consumer
from lib.server.core.source import SourceRegistry
from lib.server.rtmp.connection import RtmpConnection


def writes(seconds, mode="ffmpeg"):
    """The publisher's writes for `seconds` of media: a list of bytes."""
    tags, duration = load_tags(media_file())
    chunk_size = CHUNK_SIZE[mode]
    out, batch, tick_end, loop = [], [], TICK_S * 1000, 0
    set_chunk = encode_message(2, 1, 0, 0, chunk_size.to_bytes(4, "big"), 128)
    out.append(set_chunk)
    while True:
        for t, ts, payload in tags:
            ts += loop * duration
            if ts >= seconds * 1000:
                if batch:
                    out.append(b"".join(batch))
                return out
            message = encode_message(_CSID[t], t, 1, ts, payload, chunk_size)
            if mode == "ffmpeg":
                out.append(message)
                continue
            while ts >= tick_end:
                if batch:
                    out.append(b"".join(batch))
                    batch = []
                tick_end += TICK_S * 1000
            batch.append(message)
        loop += 1


def run(seconds, players, mode="ffmpeg"):
    data = writes(seconds, mode)
    play = SimpleNamespace(queue_length=30, mw_latency=350, time_jitter="full", gop_cache=True,
                           gop_cache_max_frames=2500)
    src = SourceRegistry().fetch_or_create("v/a/s", "v", "a", "s",
                                           SimpleNamespace(play=play, chunk_size=60000))
    sess = rs.ServerSession()
    sess.state = "publishing"
    conn = SimpleNamespace(source=src, got_media=True, session=sess, bytes_in=0,
                           receiver=SimpleNamespace(_pump=None))
    conn._step = RtmpConnection._step.__get__(conn)       # _media_in_hub's one step per read
    conn._messages_in_hub = RtmpConnection._messages_in_hub.__get__(conn)
    src.on_publish(conn)
    socks = []
    for _ in range(players):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        socks.append(b)
        src.attach(Consumer(a))
    t0 = time.process_time()
    for i, chunk in enumerate(data):
        events = RtmpConnection._media_in_hub(conn, chunk)    # what a publisher's read runs
        for ev in events or ():
            if type(ev) is rs.Media:
                src.on_media(ev.type_id, ev.timestamp, ev.payload)
        sess.data_to_send()
        if players and i % 17 == 0:    # ~every 350 ms of media
            src.flush_all()
            for b in socks:
                try:
                    while b.recv(1 << 20):
                        pass
                except BlockingIOError:
                    pass
    cpu = time.process_time() - t0
    handled = src.end
    print(f"{handled} messages in {len(data)} writes, {cpu * 1e6 / max(1, len(data)):.1f} us CPU "
          f"per write ({cpu:.2f} s)")
    return handled


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="media seconds to ingest")
    ap.add_argument("--players", type=int, default=0)
    ap.add_argument("--writes", choices=("ffmpeg", "bundled"), default="ffmpeg")
    args = ap.parse_args(argv)
    run(args.seconds, args.players, args.writes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
