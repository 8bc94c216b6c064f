"""Server implementations under test: srsedge (ours), SRS (the C++ original, when `SRS_BIN`
points to a binary) and nginx-rtmp (the C reference).

Rules:
- A Target makes origins and edges as real processes from generated configs in the run's tmp
  dir, on free ports, through the run's Procs registry (so they are killed by pid).
- srsedge edges use `edge_idle_timeout 1` so a cold edge is reached quickly; nginx-rtmp edges use
  `pull` (no origin failover there). nginx-rtmp runs one process (`master_process off`, one
  worker's work) so its pid is the one to measure, with `chunk_size 60000` like ours.
- `play.mw_latency` is left at the server default unless the run sets it (for srsedge and SRS
  alike: both default to 350 ms).
- SRSEDGE_BASELINE=DIR adds "srsedge-base", the srsedge tree in DIR (before/after in one run).
- SRS runs as built (`daemon off`, log level warn, max_connections 15000: it refuses more than
  its fd limit allows); its edges use `cluster { mode remote; origin ...; }`.
"""
import os
import shutil
import signal

from bench.procs import PYTHON, ROOT, SERVER_CPU, raise_fd_limit, free_port, wait_port

NGINX_RTMP_SO = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
STREAM = "live/bench"


class Server:
    """A running server process."""

    def __init__(self, target, role, label, port, proc, log):
        self.target, self.role, self.label = target, role, label
        self.port, self.proc, self.log = port, proc, log

    @property
    def pid(self):
        return self.proc.pid

    def url(self, stream=STREAM):
        return f"rtmp://127.0.0.1:{self.port}/{stream}"

    def kill(self, sig=signal.SIGKILL):
        self.target.procs.kill(self.proc, sig)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Target:
    """A server implementation: `origin()` and `edge(origins)` start one process each."""
    name = ""

    def __init__(self, procs, workdir):
        self.procs, self.workdir = procs, workdir

    def _start(self, role, label, extra, cpu, top=""):
        port = free_port()
        d = os.path.join(self.workdir, f"{self.name}-{label}")
        os.makedirs(d, exist_ok=True)
        argv, log = self.write_config(d, port, extra, top) if top else self.write_config(d, port, extra)
        proc = self.procs.start(argv, log=os.path.join(d, "stdout.log"), cpu=cpu,
                                cwd=getattr(self, "root", ROOT))
        wait_port(port, proc=proc)
        return Server(self, role, label, port, proc, log)

    def origin(self, label="origin", cpu=SERVER_CPU, vhost="", top=""):
        """An origin; `vhost` goes into the default vhost, `top` at the config's top level
        (srsedge and SRS only)."""
        return self._start("origin", label, vhost, cpu, top)

    def edge(self, origins, label="edge", cpu=SERVER_CPU):
        return self._start("edge", label, self.edge_config(origins), cpu)


class SrsEdgeTarget(Target):
    name = "srsedge"

    def __init__(self, procs, workdir, mw_latency=None, root=ROOT, name=None):
        super().__init__(procs, workdir)
        self.mw_latency = mw_latency
        self.root = root               # the srsedge tree to run (a baseline checkout, or ours)
        if name:
            self.name = name

    def write_config(self, d, port, vhost_body, top=""):
        """(argv, log file) of a server on `port` with `vhost_body` in the default vhost and
        `top` at the top level."""
        play = f"play {{ mw_latency {self.mw_latency}; }}" if self.mw_latency is not None else ""
        conf = os.path.join(d, "srs.conf")
        with open(conf, "w") as f:
            f.write(f"listen {port};\nmax_connections 30000;\ndaemon off;\n"
                    f"pid {d}/srs.pid;\nsrs_log_file {d}/srs.log;\n{top}\n"
                    f"vhost __defaultVhost__ {{\n    {play}\n    {vhost_body}\n}}\n")
        return [PYTHON, "srsedge.py", "-c", conf], os.path.join(d, "srs.log")

    @staticmethod
    def edge_config(origins):
        hosts = " ".join(f"127.0.0.1:{o.port}" for o in origins)
        return f"cluster {{ mode remote; origin {hosts}; edge_idle_timeout 1; }}"


class NginxRtmpTarget(Target):
    name = "nginx-rtmp"

    @staticmethod
    def available():
        return os.path.exists(NGINX_RTMP_SO) and shutil.which("nginx") is not None

    def write_config(self, d, port, app_extra):
        """(argv, log file) of one nginx process on `port` with `app_extra` in application live."""
        os.makedirs(os.path.join(d, "logs"), exist_ok=True)
        fds = raise_fd_limit()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"load_module {NGINX_RTMP_SO};\ndaemon off;\nmaster_process off;\n"
                    f"worker_processes 1;\nworker_rlimit_nofile {fds};\n"
                    f"error_log {d}/error.log warn;\npid {d}/nginx.pid;\n"
                    f"events {{ worker_connections {fds - 100}; }}\n"
                    f"rtmp {{\n  server {{\n    listen 127.0.0.1:{port};\n    chunk_size 60000;\n"
                    f"    application live {{\n      live on;\n      {app_extra}\n    }}\n  }}\n}}\n")
        return ["nginx", "-p", d, "-e", f"{d}/error.log", "-c", conf], os.path.join(d, "error.log")

    @staticmethod
    def edge_config(origins):
        return " ".join(f"pull rtmp://127.0.0.1:{o.port}/live;" for o in origins)


class SrsTarget(SrsEdgeTarget):
    name = "SRS"

    @staticmethod
    def binary():
        path = os.environ.get("SRS_BIN", "")
        return path if path and os.access(path, os.X_OK) else None

    def write_config(self, d, port, vhost_body, top=""):
        play = f"play {{ mw_latency {self.mw_latency}; }}" if self.mw_latency is not None else ""
        conf = os.path.join(d, "srs.conf")
        with open(conf, "w") as f:
            f.write(f"listen {port};\nmax_connections 15000;\ndaemon off;\n"
                    f"pid {d}/srs.pid;\nsrs_log_tank file;\nsrs_log_file {d}/srs.log;\n"
                    f"srs_log_level warn;\n{top}\n"
                    f"vhost __defaultVhost__ {{\n    {play}\n    {vhost_body}\n}}\n")
        return [self.binary(), "-c", conf], os.path.join(d, "srs.log")

    @staticmethod
    def edge_config(origins):
        hosts = " ".join(f"127.0.0.1:{o.port}" for o in origins)
        return f"cluster {{ mode remote; origin {hosts}; }}"


def targets(procs, workdir, with_nginx=True, mw_latency=None):
    out = [SrsEdgeTarget(procs, workdir, mw_latency)]
    base = os.environ.get("SRSEDGE_BASELINE")  # another srsedge tree (e.g. a `git archive` of
    if base:                                   # an older commit) measured beside ours
        out.append(SrsEdgeTarget(procs, workdir, mw_latency, root=base, name="srsedge-base"))
    if SrsTarget.binary():
        out.append(SrsTarget(procs, workdir, mw_latency))
    if with_nginx and NginxRtmpTarget.available():
        out.append(NginxRtmpTarget(procs, workdir))
    return out
