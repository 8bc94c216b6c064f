"""API statistics: byte counters, kbps samples, CPU, and SRS's summaries data from /proc.

Rules: no per-packet work. Everything is read from live objects at request time or sampled by
the API's sampler greenlet every SAMPLE_INTERVAL seconds (kbps over KBPS_WINDOW). Totals over
members that come and go (a stream's consumers, a vhost's sources) stay monotonic (`ByteTotal`).
"""
import os
import re
import sys
import time
from collections import deque

from lib.names import VERSION, new_id

_LEADING_INT = re.compile(r"^\s*[+-]?\d+")
KBPS_WINDOW = 30.0             # SRS's kbps.recv_30s / send_30s


def client_bytes_out(conn):
    return conn.send_bytes


def atoi(text):
    """C atoi: the leading integer of `text`, else 0."""
    m = _LEADING_INT.match(text)
    return int(m.group()) if m else 0


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


# ------------------------------------------------------------------ counters
class Rate:
    """kbps over the last KBPS_WINDOW seconds, from samples of a monotonic byte count."""
    __slots__ = ("samples",)

    def __init__(self):
        self.samples = deque()

    def add(self, now, value):
        s = self.samples
        s.append((now, value))
        while len(s) > 2 and now - s[1][0] >= KBPS_WINDOW:
            s.popleft()                # keep one sample at (or before) the window start

    def kbps(self):
        s = self.samples
        if len(s) < 2 or s[-1][0] <= s[0][0]:
            return 0
        return int((s[-1][1] - s[0][1]) * 8 / 1000 / (s[-1][0] - s[0][0]))


class ByteTotal:
    """A monotonic total of byte counters owned by members that come and go."""
    __slots__ = ("total", "last")

    def __init__(self):
        self.total = 0
        self.last = {}

    def update(self, items):
        """items: (member, its byte counter now). Members not listed are forgotten."""
        last, seen, total = self.last, {}, self.total
        for key, value in items:
            total += max(0, value - last.get(key, 0))
            seen[key] = value
        self.total, self.last = total, seen
        return total


class Traffic:
    """Byte totals and their rates for one stream, vhost or the whole server."""
    __slots__ = ("recv", "send", "recv_rate", "send_rate")

    def __init__(self):
        self.recv, self.send = ByteTotal(), ByteTotal()
        self.recv_rate, self.send_rate = Rate(), Rate()

    def sample(self, now):
        self.recv_rate.add(now, self.recv.total)
        self.send_rate.add(now, self.send.total)

    def kbps(self):
        return {"recv_30s": self.recv_rate.kbps(), "send_30s": self.send_rate.kbps()}


class CpuSampler:
    """This process's and the system's CPU use between two samples, from /proc."""

    def __init__(self):
        self.last = None
        self.self_percent = 0.0        # fraction of one CPU (1.0 = one core busy)
        self.system_percent = 0.0      # fraction of all CPUs busy

    @staticmethod
    def _read_times():
        fields = _read("/proc/self/stat").rpartition(")")[2].split()
        proc = int(fields[11]) + int(fields[12]) if len(fields) > 12 else 0
        cpu = [int(v) for v in _read("/proc/stat").split("\n", 1)[0].split()[1:]]
        idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0) if len(cpu) > 3 else 0
        return time.monotonic(), proc, sum(cpu), idle

    def sample(self):
        now = self._read_times()
        if self.last is not None:
            wall = now[0] - self.last[0]
            total = now[2] - self.last[2]
            if wall > 0:
                ticks = os.sysconf("SC_CLK_TCK")
                self.self_percent = round((now[1] - self.last[1]) / ticks / wall, 4)
            if total > 0:
                self.system_percent = round(1 - (now[3] - self.last[3]) / total, 4)
        self.last = now


# ------------------------------------------------------------------ live stats
class Stats:
    """Ids, byte totals, kbps samples and hook counts for the API and the metrics."""

    def __init__(self, server):
        self.server = server
        self.vhost_ids = {}            # vhost name -> id
        self.streams = {}              # Source -> Traffic (send: over its consumers)
        self.vhosts = {}               # vhost name -> Traffic (over its sources)
        self.total = Traffic()         # the server (over all sources)
        self.client_rates = {}         # cid -> (recv Rate, send Rate)
        self.hook_calls = {}           # (action, "ok"|"failed") -> count
        self.cpu = CpuSampler()

    # -- ids
    def vhost_id(self, name):
        vid = self.vhost_ids.get(name)
        if vid is None:
            vid = self.vhost_ids[name] = new_id()
        return vid

    def vhost_by_id(self, vid):
        for name, known in self.vhost_ids.items():
            if known == vid:
                return name
        return None

    @staticmethod
    def stream_id(source):
        return source.api_id

    # -- byte totals (cheap: one pass over sources and consumers; run per request and sample)
    def refresh(self):
        sources = list(self.server.sources.sources.values())
        streams, by_vhost = {}, {}
        for src in sources:
            traffic = self.streams.get(src) or Traffic()
            traffic.send.update((c, c.bytes_out) for c in src.consumers)
            traffic.recv.total = src.bytes_in
            streams[src] = traffic
            by_vhost.setdefault(src.vhost, []).append(src)
            self.stream_id(src)
        self.streams = streams
        for name in set(by_vhost) | set(self.vhosts):
            traffic = self.vhosts.setdefault(name, Traffic())
            self._sum(traffic, by_vhost.get(name, ()))
        self._sum(self.total, sources)
        return sources

    def _sum(self, traffic, sources):
        traffic.recv.update((s, s.bytes_in) for s in sources)
        traffic.send.update((s, self.streams[s].send.total) for s in sources)

    def sample(self, now):
        self.refresh()
        for traffic in (*self.streams.values(), *self.vhosts.values(), self.total):
            traffic.sample(now)
        rates = {}
        for cid, conn in list(self.server.clients.items()):
            pair = self.client_rates.get(cid) or (Rate(), Rate())
            pair[0].add(now, conn.bytes_in)
            pair[1].add(now, client_bytes_out(conn))
            rates[cid] = pair
        self.client_rates = rates
        self.cpu.sample()

    def client_kbps(self, cid):
        pair = self.client_rates.get(cid)
        if pair is None:
            return {"recv_30s": 0, "send_30s": 0}
        return {"recv_30s": pair[0].kbps(), "send_30s": pair[1].kbps()}

    # -- hooks
    def count_hooks(self, hooks):
        """Wrap `hooks.call` so every call is counted per action and verdict."""
        call = hooks.call
        if getattr(call, "counted", False):
            return
        counts = self.hook_calls

        def counted_call(action, urls, ctx):
            ok = False
            try:
                ok, reason = call(action, urls, ctx)
                return ok, reason
            finally:
                key = (action, "ok" if ok else "failed")
                counts[key] = counts.get(key, 0) + 1

        counted_call.counted = True
        hooks.call = counted_call


# ------------------------------------------------------------------ /api/v1/summaries
def _meminfo():
    info = {}
    for line in _read("/proc/meminfo").splitlines():
        name, _, value = line.partition(":")
        fields = value.split()
        if fields and fields[0].isdigit():
            info[name] = int(fields[0])
    return info


def rss_kbyte():
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _net_bytes():
    """(recv, send, recv_intranet, send_intranet) over the network devices; lo is intranet."""
    recv = send = recv_i = send_i = 0
    for line in _read("/proc/net/dev").splitlines()[2:]:
        name, _, data = line.partition(":")
        fields = data.split()
        if len(fields) < 9:
            continue
        if name.strip() == "lo":
            recv_i, send_i = recv_i + int(fields[0]), send_i + int(fields[8])
        else:
            recv, send = recv + int(fields[0]), send + int(fields[8])
    return recv, send, recv_i, send_i


def _sockstat():
    """(tcp in use, tcp time-wait, udp in use) from /proc/net/sockstat."""
    values = {}
    for line in _read("/proc/net/sockstat").splitlines():
        proto, _, rest = line.partition(":")
        fields = rest.split()
        for key, value in zip(fields[::2], fields[1::2]):
            values[(proto, key)] = int(value) if value.isdigit() else 0
    return tuple(values.get(key, 0) for key in (("TCP", "inuse"), ("TCP", "tw"), ("UDP", "inuse")))


def _tcp_established():
    lines = _read("/proc/net/snmp").splitlines()
    for head, values in zip(lines, lines[1:]):
        if head.startswith("Tcp:") and values.startswith("Tcp:"):
            table = dict(zip(head.split()[1:], values.split()[1:]))
            return atoi(table.get("CurrEstab", "0"))
    return 0


def summary_data(server, stats):
    """SRS's summaries `data`: self (this process) and system, read from /proc now."""
    now_ms = int(time.time() * 1000)
    mem = _meminfo()
    ram, swap = mem.get("MemTotal", 0), mem.get("SwapTotal", 0)
    rss = rss_kbyte()
    uptime = [float(v) for v in _read("/proc/uptime").split()[:2]] + [0.0, 0.0]
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    net = _net_bytes()
    tcp, tcp_tw, udp = _sockstat()
    stats.refresh()
    online = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "ok": True, "now_ms": now_ms,
        "self": {
            "version": VERSION, "pid": os.getpid(), "ppid": os.getppid(),
            "argv": " ".join(sys.argv), "cwd": os.getcwd(), "mem_kbyte": rss,
            "mem_percent": round(rss / ram, 4) if ram else 0.0,
            "cpu_percent": stats.cpu.self_percent,
            "srs_uptime": int(time.time() - server.started),
        },
        "system": {
            "cpu_percent": stats.cpu.system_percent,
            "disk_read_KBps": 0, "disk_write_KBps": 0, "disk_busy_percent": 0.0,
            "mem_ram_kbyte": ram,
            "mem_ram_percent": round(1 - mem.get("MemAvailable", ram) / ram, 4) if ram else 0.0,
            "mem_swap_kbyte": swap,
            "mem_swap_percent": round(1 - mem.get("SwapFree", swap) / swap, 4) if swap else 0.0,
            "cpus": os.cpu_count() or 1, "cpus_online": online or 1,
            "uptime": uptime[0], "ilde_time": uptime[1],      # SRS's spelling
            "load_1m": load[0], "load_5m": load[1], "load_15m": load[2],
            "net_sample_time": now_ms, "net_recv_bytes": net[0], "net_send_bytes": net[1],
            "net_recvi_bytes": net[2], "net_sendi_bytes": net[3],
            "srs_sample_time": now_ms, "srs_recv_bytes": stats.total.recv.total,
            "srs_send_bytes": stats.total.send.total,
            "conn_sys": tcp, "conn_sys_et": _tcp_established(), "conn_sys_tw": tcp_tw,
            "conn_sys_udp": udp, "conn_srs": len(server.clients),
        },
        # srsedge extension: the event loop's lag (docs/api.md, "Event loop extension")
        "loop": server.loop_monitor.describe() if server.loop_monitor is not None else None,
    }
