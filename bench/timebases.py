"""`python -m bench.timebases`: the CPU the fan-out flush costs when players have many different
timestamp bases (issue 22 point 3), in one process with fake sockets, so the figures do not
depend on a busy machine's syscalls or scheduling.

Players who join at different GOPs get different timestamp bases (`time_jitter full`/`zero`:
every player starts near 0, lib/rtmp/timebase.py). This measures what that costs:

- the bench media file (bench.procs.media_file: ~1 Mbps H.264/AAC, 25 fps, 2 s GOP) is fed to
  a Source with `on_media` as a publisher's connection does (onMetaData once, then the file
  looped with continuing timestamps);
- attach phase: `--players` players attach `players / bases` at a time, right after each of
  `--bases` keyframes (2000 players over 500 GOPs is 2000 players arriving over 1000 s);
  `--bases 1` is the same players arriving together; the source flushes once per GOP here;
- measured phase: `--seconds` more of media, flushed as the flusher would (every `mw_latency`
  ms of media once more than mw_msgs = 8 messages are new, at least every 350 ms); what is
  reported is the process CPU time spent in `Source.flush_all` (per media second: % of one core)
  and in `on_media` (per message work, the same whatever the players);
- `--old`: the source's timeline is past 0xFFFFFF ms (4.6 h: extended timestamps on the wire);
  `--jitter off`: the source's timestamps for every player (base 0).

A player's socket is a fake whose `sendmsg` takes every byte (a real one costs a syscall per
player per flush in every row alike). `--check` makes each fake socket decode what it receives
with our ChunkReader (or FLV tag reader) and check each player's timestamps against the
source's minus the player's base (slow: for tests, not for figures).
"""
import argparse
import json
import sys
import time
from types import SimpleNamespace

from bench.procs import media_file
from bench.pubgen import load_tags
from lib.rtmp.chunk import IMPLEMENTATION, ChunkReader
from lib.server.core.consumer import Consumer
from lib.server.core.source import SourceRegistry

OLD_MS = 5 * 3600 * 1000       # a stream 5 hours old: past 0xFFFFFF ms (4.66 h)
MW_MSGS = 8
MAX_WAIT_MS = 350


class FakeSocket:
    """Takes every byte at once; counts them."""

    def __init__(self):
        self.bytes = 0

    def sendmsg(self, bufs):
        n = sum(map(len, bufs))
        self.bytes += n
        return n

    def fileno(self):
        return -1


class CheckingSocket(FakeSocket):
    """Decodes what a player receives (RTMP chunks or an FLV body) and keeps (type, ts, size)."""

    def __init__(self, kind, chunk_size):
        super().__init__()
        self.kind = kind
        self.reader = ChunkReader(chunk_size) if kind == "rtmp" else None
        self.buf = bytearray()
        self.got = []

    def sendmsg(self, bufs):
        data = b"".join(bytes(b) for b in bufs)
        if self.kind == "rtmp":
            self.got += [(m.type_id, m.timestamp, len(m.payload)) for m in self.reader.feed(data)]
        else:
            self.buf += data
            while len(self.buf) >= 15:
                size = int.from_bytes(self.buf[1:4], "big")
                if len(self.buf) < 15 + size:
                    break
                tag = bytes(self.buf[:11 + size])
                ts = (tag[7] << 24) | (tag[4] << 16) | (tag[5] << 8) | tag[6]
                self.got.append((tag[0] & 0x1F, ts, size))
                del self.buf[:15 + size]
        return super().sendmsg(bufs)


def media(tags, duration, offset):
    """The publisher's messages, forever: onMetaData once, then the file looped."""
    meta = [(t, ts, p) for t, ts, p in tags if t == 18][:1]
    for t, ts, p in meta:
        yield t, offset, p
    loop = 0
    while True:
        for t, ts, p in tags:
            if t != 18:
                yield t, offset + ts + loop * duration, p
        loop += 1


def run(players=2000, bases=500, seconds=60, mw_latency=350, jitter="full", old=False,
        kind="rtmp", check=False):
    tags, duration = load_tags(media_file())
    play = SimpleNamespace(queue_length=30, mw_latency=mw_latency, mw_msgs=MW_MSGS,
                           time_jitter=jitter, gop_cache=True, gop_cache_max_frames=2500)
    src = SourceRegistry().fetch_or_create("v/a/s", "v", "a", "s",
                                           SimpleNamespace(play=play, chunk_size=60000))
    src._flusher = object()            # no greenlet: this bench calls flush_all itself
    offset = 0
    if old:
        if jitter == "off":
            offset = OLD_MS            # the publisher's own timestamps are old
        else:                          # the source has run for 5 hours already
            src.jitter.started = True
            src.jitter.last_out = src.jitter.max_out = OLD_MS
    src.on_publish(SimpleNamespace())
    socks = []
    per_gop = max(1, players // bases)
    feed = media(tags, duration, offset)
    keyframes = 0
    # attach phase
    for t, ts, p in feed:
        key = src.last_key_seq
        src.on_media(t, ts, p)
        if src.last_key_seq != key:
            keyframes += 1
            if keyframes > bases:
                break
            src.flush_all()
            for _ in range(per_gop if keyframes < bases else players - per_gop * (bases - 1)):
                sock = CheckingSocket(kind, src.chunk_size) if check else FakeSocket()
                socks.append(sock)
                src.attach(Consumer(sock, kind))
    src.flush_all()
    # measured phase
    start_ts = src.msgs[-1].timestamp if src.msgs else src.jitter.last_out
    last_flush = first_new = start_ts
    new = 0
    t_flush = t_media = 0.0
    flushes = 0
    messages = 0
    for t, ts, p in feed:
        t0 = time.process_time()
        src.on_media(t, ts, p)
        t1 = time.process_time()
        t_media += t1 - t0
        messages += 1
        now = src.msgs[-1].timestamp
        if not new:
            first_new = now
        new += 1
        if (new > MW_MSGS and now - last_flush >= mw_latency) or now - first_new >= MAX_WAIT_MS:
            t0 = time.process_time()
            src.flush_all()
            t_flush += time.process_time() - t0
            flushes += 1
            last_flush, new = now, 0
        if now - start_ts >= seconds * 1000:
            break
    distinct = len({c.timebase.base for c in src.consumers})
    out = {"players": len(src.consumers), "distinct_bases": distinct, "jitter": jitter,
           "old": old, "kind": kind, "mw_latency": mw_latency, "media_s": seconds,
           "messages": messages, "flushes": flushes,
           "flush_cpu_pct": round(100 * t_flush / seconds, 2),
           "on_media_cpu_pct": round(100 * t_media / seconds, 2),
           "bytes_per_player": round(sum(s.bytes for s in socks) / max(1, len(socks)))}
    if check:
        out["socks"] = socks
        out["source"] = src
    return out


ROWS = [  # (label, bases, jitter, old)
    ("arriving over time (full)", None, "full", False),
    ("arriving together (full)", 1, "full", False),
    ("over time, stream > 4.6 h", None, "full", True),
    ("together, stream > 4.6 h", 1, "full", True),
    ("over time, time_jitter off", None, "off", False),
    ("over time, off, > 4.6 h", None, "off", True),
]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.timebases", description=__doc__.split("\n")[0])
    ap.add_argument("--players", type=int, default=2000)
    ap.add_argument("--bases", type=int, default=500, help="distinct GOPs players join at")
    ap.add_argument("--seconds", type=float, default=60.0, help="media seconds measured")
    ap.add_argument("--mw-latency", type=int, nargs="+", default=[0, 350])
    ap.add_argument("--kind", choices=["rtmp", "flv"], default="rtmp")
    ap.add_argument("--repeat", type=int, default=1, help="runs per row (median reported)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = []
    print(f"chunk implementation: {IMPLEMENTATION}; {args.players} {args.kind} players, "
          f"{args.seconds:g} s of media measured; CPU % of one core (process time, fake sockets)")
    print(f"{'row':30} {'mw_latency':>10} {'bases':>6} {'flush %':>8} {'on_media %':>10}")
    for mw in args.mw_latency:
        for label, bases, jitter, old in ROWS:
            runs = [run(args.players, bases or args.bases, args.seconds, mw, jitter, old,
                        args.kind) for _ in range(args.repeat)]
            runs.sort(key=lambda r: r["flush_cpu_pct"])
            r = runs[len(runs) // 2]
            r["row"] = label
            results.append(r)
            print(f"{label:30} {mw:>10} {r['distinct_bases']:>6} {r['flush_cpu_pct']:>8.2f} "
                  f"{r['on_media_cpu_pct']:>10.2f}", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
