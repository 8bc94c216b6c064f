"""Publisher loads: who publishes the streams of a scenario, and how (issue 22).

Rules:
- The default load is real encoders: `ffmpeg` = bench.procs.FfmpegTee, real `ffmpeg -re -c
  copy` processes with the tee muxer, started staggered over one GOP. ffmpeg 5.1 writes each
  message as two sendto calls (chunk header, then payload; chunk size 60000): checked with
  strace. Real encoders are independent processes, one stream each, and that is what the
  servers are measured against: one ffmpeg per stream up to MAX_PROCS streams, above that
  ceil(n / MAX_PROCS) streams per process (the load core's budget: 100 x 1 Mbps in 100
  processes took 54-58% of it). Streams sharing a process are written back to back, so the
  server gets their readable events together and pays less per event: at 100 x 1 Mbps srsedge
  cost 25-28% with 1 stream per ffmpeg, 16% with 10, 14.5% with 25 (SRS 21%, 16%, 12.7%).
  A scenario may pass its own `per_proc` (streams: the edge sees the origin's writes, not the
  encoders', and the load core also runs the origin). One ffmpeg opens its outputs one after
  another, writing each one's onMetaData as it opens it, and sends audio/video only once all are
  open; srsedge counts onMetaData as the first packet and then allows 5 s without media
  (publish.normal_timeout): with 50 outputs per process an srsedge origin on the busy load core
  closed 20-50% of the streams, so a process carries at most 10. Every process is checked to
  keep real time (speed ~1.0x) in the window; failed outputs are counted from ffmpeg's logs.
- `pubgen-ffmpeg`, `pubgen-obs`: bench.pubgen writing like ffmpeg / like OBS's librtmp (one
  write per 4096-byte chunk); `pubgen-bundled`: bench.pubgen's one write per 20 ms tick, which
  is friendlier to the server than any real encoder: only ever an extra, labelled row.
- A load's CPU is the sum over its processes (all on the load core).
"""
import os
import re
import time

from bench.procs import LOAD_CPU, SERVER_CPU, FfmpegTee, PubGen, ksoftirqd_pid, measure_window

LOADS = ("ffmpeg", "pubgen-ffmpeg", "pubgen-obs", "pubgen-bundled")
LABELS = {"ffmpeg": "ffmpeg (real encoders)", "pubgen-ffmpeg": "pubgen, ffmpeg-style writes",
          "pubgen-obs": "pubgen, OBS-style writes",
          "pubgen-bundled": "pubgen bundled (friendlier than ffmpeg)"}


MAX_PROCS = 100
MAX_PER_PROC = 10


def per_proc_for(n):
    """Streams per ffmpeg process for n streams: 1 while the load core can carry it."""
    return min(MAX_PER_PROC, max(1, -(-n // MAX_PROCS)))


class Load:
    """n streams published to `url` ({i} = stream number) by `kind`; `pids`, `mark()`,
    `realtime(mark)` (a short text: does the load keep real time?) and `stop()` -> dict."""

    def __init__(self, ctx, kind, media, url, n, label, per_proc=None):
        if kind not in LOADS:
            raise ValueError(f"unknown load {kind!r}; choose from {', '.join(LOADS)}")
        self.kind, self.n = kind, n
        self.tee = self.pubgen = None
        self.stopped = False
        if kind == "ffmpeg":
            self.tee = FfmpegTee(ctx.procs, media, url, n, per_proc or per_proc_for(n), ctx.workdir, label)
            self.logs = [os.path.join(ctx.workdir, f"{label}-ffmpeg{j}.log") for j in range(len(self.tee.pids))]
        else:
            self.pubgen = PubGen(ctx.procs, media, [url], n, writes=kind.split("-", 1)[1],
                                 log=os.path.join(ctx.workdir, f"{label}-pubgen.log"))

    @property
    def pids(self):
        return self.tee.pids if self.tee else [self.pubgen.pid]

    def mark(self):
        return self.tee.mark() if self.tee else None

    def realtime(self, mark):
        if self.tee:
            speeds = [v for v in self.tee.speeds(mark) if v is not None]
            if not speeds:
                return f"{len(mark)} x ffmpeg, no progress in the window"
            return f"{len(mark)} x ffmpeg, speed {min(speeds):.2f}-{max(speeds):.2f}x"
        return None                    # pubgen: its late ms come with stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.stopped:
            self.stop()
        return False

    def stop(self):
        """Ends the load; {"publishing": streams still published at the end, "late_ms": ...}."""
        self.stopped = True
        if self.pubgen:
            res = self.pubgen.stop()
            return {"publishing": res.get("publishing"), "late_ms": res.get("late_ms_max"),
                    "detail": res}
        self.tee.stop()
        failed = sum(_count_failed(log) for log in self.logs)   # each failed output says so once
        return {"publishing": self.n - failed, "late_ms": None}

    def window(self, server_pid, warmup, seconds):
        """After `warmup` s, measure the server (and ksoftirqd of its core) and this load over
        `seconds`: the row's figures (cpu, rss, softirq, core, load_cpu, load_core, realtime,
        window)."""
        time.sleep(warmup)
        pids = {"server": server_pid, "load": self.pids}
        softirqd = ksoftirqd_pid(SERVER_CPU)
        if softirqd:
            pids["ksoftirqd"] = softirqd
        mark = self.mark()
        res = measure_window(pids, seconds)
        return {"cpu": res["server"]["cpu_pct"], "rss": res["server"]["rss_mb"],
                "softirq": res.get("ksoftirqd", {}).get("cpu_pct"),
                "core": res["cores"].get(SERVER_CPU, {}).get("busy"),
                "load_cpu": res["load"]["cpu_pct"], "load_core": res["cores"].get(LOAD_CPU, {}).get("busy"),
                "realtime": self.realtime(mark), "window": res}

    def finish(self, row):
        """stop() and put its figures into `row` (pubgen: its late ms as `realtime`)."""
        result = self.stop()
        if result.get("late_ms") is not None:
            row["realtime"] = f"late {result['late_ms']:.0f} ms"
        row["publishing"] = result.get("publishing")
        row["detail"] = {"window": row.pop("window", None), "load": result}
        return row


def _count_failed(log):
    try:
        with open(log, errors="replace") as f:
            return len(re.findall(r"Slave muxer #\d+ failed", f.read()))
    except OSError:
        return 0
