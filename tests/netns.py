"""Hosts as network namespaces for cluster fault tests (`ip netns`, veth pairs, bridges).

Rules:
- Every namespace is named `srsedge-nf<pid>-<random>-<host>`, so parallel runs never collide;
  `sweep_leftovers()` deletes only namespaces whose creating pid is gone.
- Nothing is added to the root namespace: bridges live in a "switch" namespace and each veth pair
  is created there with its peer moved straight into the host namespace. Addresses come from a
  private test range (10.213.0.0/16) and exist only inside these namespaces, so traffic can only
  go to them or to loopback.
- Every process started in a namespace is kept by pid and killed in `Lab.close()`, which then
  deletes the namespaces (and with them the veths, taps and bridges). close() never raises: it is
  safe in a fixture teardown after a failure. Every wait and loop here is bounded in time.
- Delay/loss is `tc netem`; where the kernel lacks sch_netem, a userspace wire (two TAP devices,
  `python -m tests.netns wire ...`) is spliced into the switch port instead, with the same effect
  on TCP: every frame delayed, a share dropped, both ways.
"""
import collections
import fcntl
import os
import random
import re
import secrets
import select
import signal
import struct
import subprocess
import sys
import time


def pid_alive(pid):
    """Whether a process `pid` exists (the namespaces we make are named after the test's pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
PREFIX = "srsedge-nf"


class NetnsError(Exception):
    pass


class Unsupported(NetnsError):
    """This kernel cannot do what was asked (a reason to skip, not a failure)."""


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and r.returncode:
        raise NetnsError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


def probe():
    """None if we may create network namespaces here, else the error text."""
    name = f"{PREFIX}{os.getpid()}-probe-{secrets.token_hex(3)}"
    try:
        ip("netns", "add", name)
    except (NetnsError, OSError, subprocess.SubprocessError) as e:
        return str(e)
    ip("netns", "del", name, check=False)
    return None


def _delete_ns(name):
    """Kill what still runs inside one of our namespaces (by pid), then delete it."""
    try:
        for pid in ip("netns", "pids", name, check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        ip("netns", "del", name, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def sweep_leftovers():
    """Delete namespaces left by earlier runs of these tests whose process is gone."""
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{PREFIX}(\d+)-", name)
        if m and not pid_alive(int(m.group(1))):
            _delete_ns(name)


class Lab:
    """A switch namespace with bridges, and hosts (namespaces) plugged into them."""

    def __init__(self):
        self.tag = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.namespaces = []
        self.procs = []
        self.bridges = set()
        self.port_bridge = {}
        self._add_ns("sw")

    def ns(self, host):
        return f"{self.tag}-{host}"

    def _add_ns(self, host):
        name = self.ns(host)
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, host, *links):
        """links: (bridge, "10.213.x.y/24") each; the host gets eth0, eth1, ... in that order.
        The switch-side end of the host's ethN is named `port(host, N)`."""
        self._add_ns(host)
        sw = self.ns("sw")
        for i, (bridge, addr) in enumerate(links):
            if bridge not in self.bridges:
                ip("-n", sw, "link", "add", bridge, "type", "bridge")
                ip("-n", sw, "link", "set", bridge, "up")
                self.bridges.add(bridge)
            port = self.port(host, i)
            ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", f"eth{i}",
               "netns", self.ns(host))
            ip("-n", sw, "link", "set", port, "master", bridge, "up")
            self.port_bridge[port] = bridge
            ip("-n", self.ns(host), "addr", "add", addr, "dev", f"eth{i}")
            ip("-n", self.ns(host), "link", "set", f"eth{i}", "up")

    @staticmethod
    def port(host, i=0):
        return f"p-{host}{i}"[:15]

    def exec(self, host, *args):
        """Run a short command in a host's namespace (host "sw" is the switch); raise on error."""
        r = subprocess.run(["ip", "netns", "exec", self.ns(host), *args], capture_output=True,
                           text=True, timeout=10)
        if r.returncode:
            raise NetnsError(f"{host}: {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def spawn(self, host, args, **kw):
        """Start a process in a host's namespace (`ip netns exec` execs it: the pid is its own)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *args], cwd=ROOT,
                                stdin=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def link_down(self, host, dev="eth0"):
        ip("-n", self.ns(host), "link", "set", dev, "down")

    def netem(self, host, dev, *spec):
        """`tc qdisc add dev DEV root netem SPEC` in a host's namespace (egress of DEV)."""
        self.exec(host, "tc", "qdisc", "add", "dev", dev, "root", "netem", *spec)

    def impair(self, host, i, delay_ms, loss_pct):
        """Delay and loss both ways on the link of host's eth<i>; returns how it was done."""
        spec = ("delay", f"{delay_ms}ms", "loss", f"{loss_pct}%")
        try:
            self.netem(host, f"eth{i}", *spec)
        except NetnsError as e:
            if "unknown" not in str(e):
                raise
        else:
            self.netem("sw", self.port(host, i), *spec)
            return "tc netem"
        if not os.path.exists("/dev/net/tun"):
            raise Unsupported("no sch_netem in this kernel, no /dev/net/tun for a userspace wire")
        self._splice_wire(host, i, delay_ms / 1000, loss_pct / 100)
        return "userspace tap wire (no sch_netem in this kernel)"

    def _splice_wire(self, host, i, delay, loss):
        """port -> new bridge -> tap a ~wire~ tap b -> the port's bridge."""
        sw, port = self.ns("sw"), self.port(host, i)
        side, tap_a, tap_b = (f"{k}-{host}{i}"[:15] for k in ("w", "ta", "tb"))
        proc = self.spawn("sw", [PYTHON, "-m", "tests.netns", "wire", tap_a, tap_b, str(delay),
                                 str(loss), "120"], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise NetnsError(f"wire did not start: {line!r}")
        ip("-n", sw, "link", "add", side, "type", "bridge")
        ip("-n", sw, "link", "set", side, "up")
        ip("-n", sw, "link", "set", tap_a, "master", side, "up")
        ip("-n", sw, "link", "set", tap_b, "master", self.port_bridge[port], "up")
        ip("-n", sw, "link", "set", port, "master", side)

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for name in reversed(self.namespaces):
            _delete_ns(name)
        self.namespaces = []


class NsServer:
    """`python srsedge.py -c CONF` on a host of a Lab; its log goes to DIR/NAME.log."""

    def __init__(self, lab, host, conf_text, directory, name=None):
        self.lab = lab
        self.host = host
        self.name = name or host
        self.dir = directory / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / f"{self.name}.conf"
        self.log = self.dir / f"{self.name}.log"
        self.conf.write_text(f"pid {self.dir}/{self.name}.pid;\n" + conf_text)
        self.proc = None
        self.log_start = 0                  # log offset where the current run began

    def spawn(self):
        self.log_start = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as logf:
            self.proc = self.lab.spawn(self.host, [PYTHON, "srsedge.py", "-c", str(self.conf)],
                                       stdout=logf, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout=10.0):
        """Until the current run logged its listening line."""
        deadline = time.time() + timeout
        while "listening:" not in self.log_text(current=True):
            if self.proc.poll() is not None or time.time() > deadline:
                raise NetnsError(f"{self.name} did not start: {self.log_text()[-1500:]}")
            time.sleep(0.05)
        return self

    def log_text(self, current=False):
        """The whole log, or only what the current run wrote."""
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as f:
            f.seek(self.log_start if current else 0)
            return f.read().decode(errors="replace")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)


# ---------------------------------------------------------------- userspace netem
TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000


def tap_open(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def wire(tap_a, tap_b, delay, loss, lifetime):
    """Forward frames between two new TAP devices, each delayed by `delay` s, a `loss` share
    dropped; ends after `lifetime` s (the taps vanish with the process)."""
    a, b = tap_open(tap_a), tap_open(tap_b)
    peer = {a: b, b: a}
    queue = collections.deque()         # (due, fd, frame): one delay keeps it in due order
    print("ready", flush=True)
    end = time.monotonic() + lifetime
    while (now := time.monotonic()) < end:
        while queue and queue[0][0] <= now:
            _, fd, frame = queue.popleft()
            try:
                os.write(fd, frame)
            except OSError:
                pass
        wait = min(0.5, end - now, queue[0][0] - now if queue else 0.5)
        for fd in select.select([a, b], [], [], max(0.0, wait))[0]:
            try:
                frame = os.read(fd, 65536)
            except OSError:
                continue
            if random.random() >= loss:
                queue.append((time.monotonic() + delay, peer[fd], frame))


if __name__ == "__main__":
    if sys.argv[1:2] == ["wire"]:
        wire(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]))
