"""`python -m bench.hlspath [--streams 50] [--seconds 30] [--profile]`: the origin's HLS work in one
process, without sockets, as CPU seconds per media second (= share of a core) for S streams:

    .venv/bin/python -m bench.hlspath                 # HLS on vs off, 50 streams x 30 s
    .venv/bin/python -m bench.hlspath --profile       # cProfile of the HLS run, top functions

Rules: the bench media file (bench/procs.py media_file(), ~1 Mbps) is fed tag by tag into S real
Sources (SourceRegistry with the HLS plugin attached, as the server wires it; config
`hls { enabled on; hls_fragment 2; }` and `http_remux` on, no players) in 100 ms ticks of
media; after each tick every HLS sink drains its queue as the plugin's ticker does
(HlsSink.tick: segmenter, TS muxing; file writes by the sink's worker in gevent's threadpool
into a temporary hls_path, waited for before the next tick). The same
feed with HLS off is timed too; the difference is what HLS costs. Process CPU time
(time.process_time, every thread), so the writer threads count. The ticker's own wake-up (one
per 100 ms for all streams) is not in the figure.
"""
import argparse
import cProfile
import pstats
import sys
import tempfile
import time
import types

import gevent

from bench.procs import media_file
from bench.pubgen import load_tags
from lib.config import parse_text
from lib.server.core.source import SourceRegistry
from lib.server.hls.sink import HlsPlugin
from lib.server.process.log import Logger

TICK_MS = 100


def config(hls, root):
    return parse_text(
        f"srs_log_tank console; srs_log_level error; http_server {{ enabled on; }}\n"
        f"vhost __defaultVhost__ {{ hls {{ enabled {'on' if hls else 'off'}; hls_fragment 2; "
        f"hls_path {root}; }} http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }} }}")


def ticks(seconds):
    """[[(type, ts, payload)] per TICK_MS of media] for `seconds` of the bench file, looped."""
    tags, duration = load_tags(media_file())
    out, cur, tick_end, loop = [], [], TICK_MS, 0
    while True:
        for t, ts, payload in tags:
            ts += loop * duration
            if ts >= seconds * 1000:
                out.append(cur)
                return out
            while ts >= tick_end:
                out.append(cur)
                cur = []
                tick_end += TICK_MS
            cur.append((t, ts, payload))
        loop += 1


def run(streams, seconds, hls, profile=False):
    """CPU seconds for `streams` x `seconds` of media (HLS on or off)."""
    data = ticks(seconds)
    with tempfile.TemporaryDirectory(prefix="hlspath-") as root:
        conf = config(hls, root)
        server = types.SimpleNamespace(config=conf, logger=Logger("console", "error"))
        plugin = HlsPlugin(server)
        registry = SourceRegistry(on_create=plugin.on_source_created)
        vconf = conf.vhost("__defaultVhost__")
        sources = []
        for i in range(streams):
            src = registry.fetch_or_create(f"__defaultVhost__/live/s{i}", "__defaultVhost__",
                                           "live", f"s{i}", vconf)
            src.on_publish(object())
            sources.append(src)
        gevent.sleep(0.2)                   # the ticker handles the publish markers
        sinks = list(plugin.sinks.values())
        if plugin._ticker is not None:      # this loop drains the queues itself
            plugin._ticker.kill()
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        t0 = time.process_time()
        for tick in data:
            for src in sources:
                on_media = src.on_media
                for t, ts, payload in tick:
                    on_media(t, ts, payload)
            for sink in sinks:
                if sink.queue and sink._worker is None:
                    sink.tick()
            gevent.joinall([s._worker for s in sinks if s._worker is not None])
        cpu = time.process_time() - t0
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        files = sum(1 for s in sinks if s.segmenter and s.segmenter.window)
        return cpu, files


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.hlspath",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0, help="media seconds per stream")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile the HLS run (once)")
    args = ap.parse_args(argv)
    if args.profile:
        run(args.streams, args.seconds, True, profile=True)
        return 0
    on, off = [], []
    for _ in range(args.repeat):
        off.append(run(args.streams, args.seconds, False)[0])
        cpu, listed = run(args.streams, args.seconds, True)
        on.append(cpu)
    med = lambda v: sorted(v)[len(v) // 2]          # noqa: E731
    hls = med(on) - med(off)
    print(f"{args.streams} streams x {args.seconds:.0f} s media ({listed} with segments): "
          f"ingest only {med(off) / args.seconds * 100:.2f}% of a core, with HLS "
          f"{med(on) / args.seconds * 100:.2f}%, HLS part {hls / args.seconds * 100:.2f}% "
          f"({hls / args.seconds:.4f} CPU s per media s; runs on {[round(x, 2) for x in on]}, "
          f"off {[round(x, 2) for x in off]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
