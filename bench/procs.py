"""Processes of a benchmark run: servers, publishers, load generators, all killed by pid.

Rules:
- Every process is started through a `Procs` registry and killed by its pid when the run ends,
  on errors and on Ctrl-C (the caller uses `with Procs() as procs:`). Never by name.
- The server under test runs on SERVER_CPU; the load generator, publishers, helper servers and
  the harness itself on LOAD_CPU (`taskset`), when the machine has two cores or more.
- Children inherit the raised fd limit (soft = hard, set once by `raise_fd_limit`).
- Generated media is cached outside the repo (CACHE_DIR) and made once.
- Every wait has a time bound.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from bench.loadgen import proc_rss_mb, raise_fd_limit  # noqa: F401 (re-exported)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
CACHE_DIR = os.environ.get("SRSEDGE_BENCH_CACHE", "/tmp/srsedge-bench-cache")
MEDIA_SECONDS = 30
SERVER_CPU, LOAD_CPU = 0, 1
PINNED = (os.cpu_count() or 1) >= 2


def pin_self():
    """The harness runs with the load, off the server's core."""
    if PINNED:
        os.sched_setaffinity(0, {LOAD_CPU})


def taskset(cpu, argv):
    return ["taskset", "-c", str(cpu), *argv] if PINNED else list(argv)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} not listening after {timeout}s")


def media_file(video_kbps=900):
    """A ~1 Mbps (video_kbps + 64 kbps AAC) H.264/AAC FLV, 640x360 25 fps, 2 s GOP, made once and
    cached."""
    name = "1mbps" if video_kbps == 900 else f"{video_kbps}k"
    path = os.path.join(CACHE_DIR, f"bench-{name}-{MEDIA_SECONDS}s.flv")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE_DIR, exist_ok=True)
    tmp = path + ".part.flv"
    cmd = ["ffmpeg", "-v", "error", "-y",
           "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
           "-t", str(MEDIA_SECONDS), "-c:v", "libx264", "-preset", "veryfast",
           "-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps}k", "-bufsize", f"{video_kbps}k",
           "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "64k", "-f", "flv", tmp]
    subprocess.run(cmd, check=True, timeout=300)
    os.replace(tmp, path)
    return path


class Procs:
    """Registry of started processes; `kill_all` (also on exit) kills each by pid."""

    def __init__(self):
        self.procs = []
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):   # SIGINT even if inherited ignored
            self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc):
        self.kill_all()
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    @staticmethod
    def _on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def start(self, argv, log=None, cpu=LOAD_CPU, stdout=None, cwd=ROOT):
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(taskset(cpu, argv), cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=stdout if stdout is not None else out,
                                    stderr=out if log else subprocess.DEVNULL)
        finally:
            if log:
                out.close()
        self.procs.append(proc)
        return proc

    def kill(self, proc, sig=signal.SIGTERM, timeout=5.0):
        if proc.poll() is None:
            try:
                os.kill(proc.pid, sig)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
        if proc in self.procs:
            self.procs.remove(proc)

    def kill_all(self):
        for proc in list(reversed(self.procs)):
            self.kill(proc, signal.SIGKILL)


class Publisher:
    """`ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv URL` on the load core."""

    def __init__(self, procs, media, url, log):
        self.procs = procs
        self.url = url
        self.proc = procs.start(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", media,
                                 "-c", "copy", "-f", "flv", url], log=log)

    def stop(self):
        self.procs.kill(self.proc)


class FfmpegTee:
    """Real encoders for many streams: ceil(n / per_proc) `ffmpeg -re -stream_loop -1 -i FILE
    -c copy -map 0 -f tee "[f=flv:onfail=ignore]URL|..."` processes on the load core, each
    publishing `per_proc` of the n streams (urls with {i} = stream number), started staggered
    over one GOP (`stagger_s`) so the processes' keyframes do not line up (the streams of one
    process share theirs, as the outputs of one encoder do). Each writes `-progress` to a file:
    `speeds()` says whether every process keeps real time (speed ~1.0x)."""

    def __init__(self, procs, media, url, n, per_proc, workdir, label, stagger_s=2.0, timeout=60.0):
        self.procs, self.n = procs, n
        self.progress, self.procs_list = [], []
        groups = [list(range(i, min(n, i + per_proc))) for i in range(0, n, per_proc)]
        try:
            for j, group in enumerate(groups):
                if j:
                    time.sleep(stagger_s / len(groups))
                outs = "|".join(f"[f=flv:onfail=ignore]{url.replace('{i}', str(i))}" for i in group)
                prog = os.path.join(workdir, f"{label}-ffmpeg{j}.progress")
                for old in (prog, os.path.join(workdir, f"{label}-ffmpeg{j}.log")):
                    if os.path.exists(old):       # a repeat of the same case: count only its own
                        os.remove(old)
                self.progress.append(prog)
                self.procs_list.append(procs.start(
                    ["ffmpeg", "-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", media,
                     "-c", "copy", "-map", "0", "-progress", prog, "-stats_period", "1",
                     "-f", "tee", outs], log=os.path.join(workdir, f"{label}-ffmpeg{j}.log")))
            deadline = time.monotonic() + timeout
            while not all(self._media_s(p) > 0 for p in self.progress):
                dead = [p.args for p in self.procs_list if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"ffmpeg tee publishers not publishing ({len(dead)} exited)")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _last(path):
        """The last complete block of an ffmpeg -progress file (each ends with progress=...)."""
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            return {}
        block, last = {}, {}
        for line in lines:
            key, _, value = line.partition("=")
            if key == "progress":
                last, block = block, {}
            else:
                block[key] = value
        return last

    def _media_s(self, path):
        value = self._last(path).get("out_time_us", "")
        return int(value) / 1e6 if value.isdigit() else 0.0

    def mark(self):
        """[(wall time of the last progress block, media s)] per process: `speeds(mark)` later.
        The wall time is the file's mtime, so a block written up to a second before the call
        does not count as a second of lost real time."""
        out = []
        for p in self.progress:
            try:
                t = os.stat(p).st_mtime
            except OSError:
                t = 0.0
            out.append((t, self._media_s(p)))
        return out

    def speeds(self, mark):
        """Media seconds per wall second of each process since `mark` (1.0 = real time)."""
        return [round((m1 - m0) / (t1 - t0), 3) if t1 > t0 else None
                for (t0, m0), (t1, m1) in zip(mark, self.mark())]

    @property
    def pids(self):
        return [p.pid for p in self.procs_list]

    def stop(self):
        for p in self.procs_list:
            self.procs.kill(p)


def run_loadgen(procs, urls, n, probes=(), watch=None, on_measure=None, read_interval=0.1,
                warmup=3.0, duration=10.0, connect_timeout=30.0, extra=(), log=None):
    """Run bench.loadgen on the load core; `on_measure()` is called when its window opens.
    Returns its result dict (or a dict with an "error")."""
    argv = [PYTHON, "-m", "bench.loadgen", *urls, "-n", str(n),
            "--read-interval", str(read_interval), "--warmup", str(warmup),
            "--duration", str(duration), "--connect-timeout", str(connect_timeout), *extra]
    for url in probes:
        argv += ["--probe", url]
    for name, pid in (watch or {}).items():
        argv += ["--watch", f"{name}={pid}"]
    proc = procs.start(argv, log=log, stdout=subprocess.PIPE)
    bound = time.monotonic() + connect_timeout + warmup + duration + 60
    result = None
    try:
        for line in proc.stdout:       # the loadgen ends by itself within its bounds
            msg = json.loads(line)
            if msg.get("phase") == "measure" and on_measure is not None:
                on_measure()
            if "result" in msg:
                result = msg["result"]
            if time.monotonic() > bound:
                break
    finally:
        proc.stdout.close()
        procs.kill(proc)
    return result if result is not None else {"error": f"loadgen gave no result (rc {proc.returncode})"}


# ------------------------------------------------------------ /proc helpers
def ksoftirqd_pid(cpu):
    """The kernel thread that runs deferred packet work on `cpu` (None if not found)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == f"ksoftirqd/{cpu}":
                        return int(pid)
            except OSError:
                pass
    return None


def tcp_links(pid, remote_port):
    """Established TCP connections of process `pid` to `remote_port` (from /proc)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return 0
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    port = int(fields[2].rsplit(":", 1)[1], 16)
                    if port == remote_port and fields[3] == "01" and fields[9] in inodes:
                        count += 1
        except OSError:
            pass
    return count


class PubGen:
    """bench.pubgen (N publishers in one process) on the load core; `start` returns once all
    publish (or its setup bound passed), `stop` ends it and returns its result."""

    def __init__(self, procs, media, urls, n, setup_timeout=60.0, log=None, writes="ffmpeg"):
        self.procs = procs
        argv = [PYTHON, "-m", "bench.pubgen", *urls, "-n", str(n), "--media", media,
                "--setup-timeout", str(setup_timeout), "--writes", writes]
        self.proc = procs.start(argv, log=log, stdout=subprocess.PIPE)
        self.started = None
        for line in self.proc.stdout:  # bounded by its setup timeout
            msg = json.loads(line)
            if msg.get("phase") == "publishing":
                self.started = msg
                break
        if self.started is None:
            self.stop()
            raise RuntimeError(f"pubgen ended before publishing (rc {self.proc.returncode})")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        result = {}
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            for line in self.proc.stdout:
                msg = json.loads(line)
                result = msg.get("result", result)
        finally:
            self.proc.stdout.close()
            self.procs.kill(self.proc)
        return result


def measure_window(pids, seconds):
    """CPU % of one core and RSS MB of each named pid (or list of pids, summed) over `seconds`,
    plus each core's busy %."""
    from bench.loadgen import cpu_busy, proc_cpu_seconds, read_cpu_times
    pids = {name: pid if isinstance(pid, (list, tuple)) else [pid] for name, pid in pids.items()}
    t0, cpus0 = time.monotonic(), read_cpu_times()
    c0 = {name: sum(map(proc_cpu_seconds, ps)) for name, ps in pids.items()}
    time.sleep(seconds)
    span = time.monotonic() - t0
    out = {name: {"cpu_pct": round((sum(map(proc_cpu_seconds, ps)) - c0[name]) / span * 100, 1),
                  "rss_mb": round(sum(map(proc_rss_mb, ps)), 1)} for name, ps in pids.items()}
    out["cores"] = cpu_busy(cpus0, read_cpu_times())
    return out
