"""Load generator: N RTMP players in one process, on raw non-blocking sockets and one epoll.

Rules:
- No gevent, one thread. Setup (TCP connect, simple handshake, connect, createStream, play) is
  event-driven. A player stays event-driven ("eager") until its first video keyframe has fully
  arrived, then it is read in passes every `read_interval` seconds, staggered over time slots,
  like a remote player behind a real network. read_interval 0 keeps every player eager; probe
  players (latency) are always eager.
- The media phase parses chunk headers only (type, length, timestamp of each message); media
  payload bytes are skipped without copying. Control and command payloads are collected (they
  are tiny), and so are video payloads until the first keyframe (to recognise it).
- Acknowledgements go out when the server's window is reached; pings are answered.
- Every phase has a time bound: connect (`connect_timeout`), `warmup`, measure (`duration`).
- It measures its own CPU (getrusage) and, for pids it is given, their CPU% of one core and RSS
  from /proc over the measure window, so its limits are never mistaken for the server's.
- Lag of a player = (wall time since its first video) - (media time since its first video),
  minus the smallest value it ever had (the GOP burst at start is its best point); "behind" is
  lag > BEHIND_S at the end.
"""
import argparse
import errno
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from urllib.parse import urlsplit

from lib.rtmp.chunk import encode_message
from lib.rtmp.handshake import ClientHandshake
from lib.rtmp.message import ack, encode_command, parse_command, parse_user_control, user_control

BEHIND_S = 3.0
RECV_SIZE = 262144
SLOT_S = 0.005                     # granularity of the paced-read wheel
HEADER_SIZE = (11, 7, 3, 0)        # message header bytes after the basic header, by fmt
COLLECT_TYPES = frozenset((1, 2, 3, 4, 5, 6, 17, 20))   # control and command: payload kept
_TS_LEN_TYPE = struct.Struct(">BHBHB")
_U32 = struct.Struct(">I")
EPOLLIN, EPOLLOUT, EPOLLERR = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR | select.EPOLLHUP
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_rtmp_url(url):
    """rtmp://host:port/app/stream -> (host, port, app, stream, tc_url)."""
    parts = urlsplit(url)
    app, _, stream = parts.path.lstrip("/").partition("/")
    port = parts.port or 1935
    return parts.hostname, port, app, stream, f"rtmp://{parts.hostname}:{port}/{app}"


class Chan:
    """Reader state of one chunk stream id."""
    __slots__ = ("ts", "delta", "length", "type_id", "left", "ext", "buf")

    def __init__(self):
        self.ts = self.delta = self.length = self.type_id = self.left = 0
        self.ext = -1                  # extended timestamp of the last header, -1 when none
        self.buf = None                # payload being collected, or None when skipped


class Player:
    """One RTMP player; `feed` is the chunk-header-only parser of everything it receives."""

    def __init__(self, gen, url, probe=False):
        self.gen = gen
        self.url = url
        self.host, self.port, self.app, self.stream, self.tc_url = parse_rtmp_url(url)
        self.probe = probe
        self.sock = None
        self.fd = -1
        self.state = "new"             # connecting, handshake, setup, playing, failed, closed
        self.error = ""
        self.hs = None
        self.out = b""
        self.partial = b""             # an incomplete chunk header carried to the next read
        self.chans = {}
        self.cur = None                # Chan whose chunk payload is being skipped/collected
        self.skip = 0                  # payload bytes of the current chunk still to come
        self.chunk_size = 128
        self.window = 0
        self.acked = 0
        self.received = 0
        self.bytes0 = 0                # `received` when the measure window opened
        self.eager = True
        self.t_start = self.t_playing = self.t_key = None
        self.first_vts = self.last_vts = self.last_ats = -1
        self.t_first_v = self.t_last_v = None
        self.min_lag = None
        self.lag = 0.0
        self.msgs = 0
        self.regressions = 0
        self.max_gap = 0.0
        self.arrivals = [] if probe else None   # probes: (video ts, length, arrival time)
        self.stream_id = 1

    # ------------------------------------------------------------ socket side
    def start(self, ep, now):
        self.t_start = now
        s = self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        self.fd = s.fileno()
        self.state = "connecting"
        err = s.connect_ex((self.host, self.port))
        if err not in (0, errno.EINPROGRESS):
            self.fail(f"connect: {os.strerror(err)}")
            return
        ep.register(self.fd, EPOLLOUT)

    def on_writable(self, ep):
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.fail(f"connect: {os.strerror(err)}")
            return
        self.state = "handshake"
        self.hs = ClientHandshake(complex=False)
        ep.modify(self.fd, EPOLLIN)
        self.send(self.hs.start())

    def send(self, data):
        data = self.out + data
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as e:
            self.fail(f"send: {e}")
            return
        self.out = data[sent:]

    def read(self, buf, now):
        """Read all that is buffered in the kernel (one pass) and parse it."""
        if self.out:
            self.send(b"")
        size = len(buf)
        while True:
            try:
                n = self.sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.fail(f"recv: {e}")
                return
            if n == 0:
                self.fail("closed by server")
                return
            self.received += n
            if self.hs is not None:
                self.handshake(bytes(buf[:n]))
            else:
                self.feed(buf, n, now)
            if self.state in ("failed", "closed"):
                return
            if self.window and self.received - self.acked >= self.window:
                self.acked = self.received
                self.send(encode_message(2, 3, 0, 0, ack(self.received), 128))
            if n < size:
                return

    def fail(self, why):
        if self.state in ("failed", "closed"):
            return
        self.state = "closed" if self.state == "playing" else "failed"
        self.error = why
        self.gen.on_gone(self)
        try:
            self.sock.close()
        except OSError:
            pass

    def close(self):
        if self.sock is not None and self.state not in ("failed", "closed"):
            self.sock.close()

    # ------------------------------------------------------------ RTMP setup
    def handshake(self, data):
        c2 = self.hs.feed(data)
        if not self.hs.done:
            return
        rest = self.hs.leftover
        self.hs = None
        self.state = "setup"
        obj = {"app": self.app, "flashVer": "LNX 9,0,124,2", "tcUrl": self.tc_url, "fpad": False,
               "capabilities": 239.0, "audioCodecs": 3575.0, "videoCodecs": 252.0,
               "videoFunction": 1.0, "objectEncoding": 0.0}
        self.send(c2 + self.command(3, 0, "connect", 1.0, obj))
        if rest:
            self.feed(rest, len(rest), time.monotonic())

    @staticmethod
    def command(csid, stream_id, name, tid, obj, *args):
        return encode_message(csid, 20, stream_id, 0, encode_command(name, tid, obj, *args), 128)

    def on_control(self, type_id, payload, now):
        if type_id == 1:
            self.chunk_size = _U32.unpack_from(payload)[0] & 0x7FFFFFFF
        elif type_id == 5:
            self.window = _U32.unpack_from(payload)[0]
        elif type_id == 4:
            event, values = parse_user_control(payload)
            if event == 6 and values:
                self.send(encode_message(2, 4, 0, 0, user_control(7, values[0]), 128))
        elif type_id in (17, 20):
            self.on_command(parse_command(type_id, payload), now)

    START_CODE = "NetStream.Play.Start"

    def stream_request(self):
        """What goes out once createStream is answered: buffer length, then play."""
        return (encode_message(2, 4, 0, 0, user_control(3, self.stream_id, 3000), 128)
                + self.command(8, self.stream_id, "play", 0.0, None, self.stream, -2.0))

    def create_stream_request(self):
        """What goes out once connect is answered."""
        return self.command(3, 0, "createStream", 2.0, None)

    def on_command(self, cmd, now):
        if cmd.name == "_result" and cmd.tid == 1.0:
            self.send(self.create_stream_request())
        elif cmd.name == "_result" and cmd.tid == 2.0:
            if cmd.args and isinstance(cmd.args[0], float):
                self.stream_id = int(cmd.args[0])
            self.send(self.stream_request())
        elif cmd.name == "_error":
            self.fail(f"{cmd.name} {cmd.args!r}"[:200])
        elif cmd.name == "onStatus":
            info = cmd.args[0] if cmd.args and isinstance(cmd.args[0], dict) else {}
            if info.get("level") == "error":
                self.fail(f"onStatus {info.get('code')}")
            elif info.get("code") == self.START_CODE and self.state == "setup":
                self.state = "playing"
                self.t_playing = now
                self.gen.on_playing(self)

    # ------------------------------------------------------------ media phase
    def feed(self, data, n, now):
        """Parse chunk headers in data[:n]; skip media payloads. The hot path."""
        if self.partial:
            data = self.partial + bytes(data[:n])
            n = len(data)
            self.partial = b""
        pos = 0
        skip = self.skip
        chans = self.chans
        got_video = False
        while pos < n:
            if skip:
                take = n - pos
                if take > skip:
                    take = skip
                ch = self.cur
                if ch.buf is not None:
                    ch.buf += data[pos:pos + take]
                pos += take
                skip -= take
                if skip or ch.left or ch.buf is None:
                    continue
                payload = bytes(ch.buf)
                ch.buf = None
                if ch.type_id == 9:
                    self.on_video_payload(payload, now)
                else:
                    self.on_control(ch.type_id, payload, now)
                    if self.state in ("failed", "closed"):
                        return
                continue
            # a chunk header
            b0 = data[pos]
            fmt = b0 >> 6
            csid = b0 & 0x3F
            p = pos + 1
            if csid < 2:
                p += 1 + csid
                if p > n:
                    break
                csid = 64 + data[pos + 1] + (data[pos + 2] << 8 if csid == 1 else 0)
            end = p + HEADER_SIZE[fmt]
            if end > n:
                break
            ch = chans.get(csid)
            if ch is None:
                ch = chans[csid] = Chan()
            new = ch.left == 0
            if fmt < 2:
                t_hi, t_lo, l_hi, l_lo, type_id = _TS_LEN_TYPE.unpack_from(data, p)
                field = (t_hi << 16) | t_lo
            elif fmt == 2:
                field = (data[p] << 16) | (data[p + 1] << 8) | data[p + 2]
            if fmt < 3:
                ext = -1
                if field == 0xFFFFFF:
                    if end + 4 > n:
                        break
                    field = ext = _U32.unpack_from(data, end)[0]
                    end += 4
                ch.ext = ext
                ch.delta = field
                if fmt == 0:
                    ch.ts = field
                elif new:
                    ch.ts = (ch.ts + field) & 0xFFFFFFFF
                if fmt < 2:
                    ch.length = (l_hi << 16) | l_lo
                    ch.type_id = type_id
            else:
                if ch.ext >= 0:        # optional on continuations (as SRS), always on a new one
                    if end + 4 > n:
                        break
                    value = _U32.unpack_from(data, end)[0]
                    if new:
                        ch.delta = ch.ext = value
                        end += 4
                    elif value == ch.ext:
                        end += 4
                if new:
                    ch.ts = (ch.ts + ch.delta) & 0xFFFFFFFF
            pos = end
            if new:
                ch.left = ch.length
                self.msgs += 1
                t = ch.type_id
                if t == 9:
                    got_video = True
                    self.on_video_start(ch, now)
                elif t == 8:
                    if ch.ts < self.last_ats:
                        self.regressions += 1
                    self.last_ats = ch.ts
                elif t in COLLECT_TYPES:
                    ch.buf = bytearray()
            skip = ch.left if ch.left < self.chunk_size else self.chunk_size
            ch.left -= skip
            self.cur = ch
            if skip == 0 and ch.buf is not None:   # an empty control message
                ch.buf = None
        else:
            self.skip = skip
            if got_video:
                self.update_lag(now)
            return
        self.skip = skip
        self.partial = bytes(data[pos:n])
        if got_video:
            self.update_lag(now)

    def on_video_start(self, ch, now):
        ts = ch.ts
        if ts < self.last_vts:
            self.regressions += 1
        self.last_vts = ts
        if self.t_last_v is not None:
            gap = now - self.t_last_v
            if gap > self.max_gap:
                self.max_gap = gap
        self.t_last_v = now
        if self.t_first_v is None:
            self.t_first_v = now
            self.first_vts = ts
        if self.t_key is None:
            ch.buf = bytearray()       # collect until the first keyframe is recognised
        if self.arrivals is not None:
            self.arrivals.append((ts, ch.length, now))

    def on_video_payload(self, payload, now):
        """A complete video message before the first keyframe: is it the keyframe?"""
        if len(payload) >= 2 and payload[0] >> 4 == 1 and payload[1] == 1 and self.t_key is None:
            self.t_key = now
            self.gen.on_first_key(self)

    def update_lag(self, now):
        lag = (now - self.t_first_v) - (self.last_vts - self.first_vts) / 1000.0
        if self.min_lag is None or lag < self.min_lag:
            self.min_lag = lag
        self.lag = lag - self.min_lag

    def lag_at(self, now):
        if self.t_first_v is None:
            return None
        return (now - self.t_first_v) - (self.last_vts - self.first_vts) / 1000.0 - self.min_lag


# ------------------------------------------------------------ /proc helpers
def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def read_cpu_times():
    """cpu number -> (total, busy, softirq, steal) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in vals[:8])
                total = user + nice + system + idle + iowait + irq + softirq + steal
                out[int(name[3:])] = (total, total - idle - iowait, softirq, steal)
    return out


def cpu_busy(before, after):
    """Per cpu between two read_cpu_times(): busy %, softirq % and steal % of the whole cpu
    (all processes: shows neighbours and kernel packet work, not just ours)."""
    res = {}
    for cpu, now in after.items():
        then = before.get(cpu, (0, 0, 0, 0))
        total = now[0] - then[0]
        if total > 0:
            busy, softirq, steal = (round(100.0 * (a - b) / total, 1) for a, b in zip(now[1:], then[1:]))
            res[cpu] = {"busy": busy, "softirq": softirq, "steal": steal}
    return res


def own_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stats(values, scale=1.0):
    """median, p99 and max of a list (None when empty), scaled."""
    if not values:
        return {"n": 0, "median": None, "p99": None, "max": None}
    v = sorted(values)
    pick = lambda q: round(v[min(len(v) - 1, int(q * len(v)))] * scale, 1)  # noqa: E731
    return {"n": len(v), "median": pick(0.5), "p99": pick(0.99), "max": round(v[-1] * scale, 1)}


def latency_vs(ref, other):
    """Arrival delay of `other` behind `ref` for the same video messages (ms values).

    Servers may rebase timestamps, so messages are matched by length, with the timestamp offset
    that most pairs of equal length agree on."""
    by_len = {}
    for ts, length, t in ref:
        by_len.setdefault(length, []).append((ts, t))
    votes = {}
    for ts, length, _ in other:
        for rts, _ in by_len.get(length, ()):
            votes[ts - rts] = votes.get(ts - rts, 0) + 1
    if not votes:
        return []
    offset = max(votes, key=votes.get)
    ref_at = {(ts, length): t for ts, length, t in ref}
    out = []
    for ts, length, t in other:
        t0 = ref_at.get((ts - offset, length))
        if t0 is not None:
            out.append((t - t0) * 1000.0)
    return out


# ------------------------------------------------------------ the generator
class LoadGen:
    def __init__(self, urls, n, probes=(), read_interval=0.1, connect_timeout=30.0, warmup=3.0,
                 duration=10.0, max_pending=200, connect_rate=1000.0, watch=None, out=None,
                 stop_on_video=False):
        self.players = [Player(self, urls[i % len(urls)]) for i in range(n)]
        self.probes = [Player(self, u, probe=True) for u in probes]
        self.read_interval = read_interval
        self.connect_timeout = connect_timeout
        self.warmup = warmup
        self.duration = duration
        self.max_pending = max_pending
        self.connect_rate = connect_rate
        self.watch = watch or {}       # name -> pid to measure over the window
        self.out = out                 # phase lines go here (a file), or nowhere
        self.ep = select.epoll()
        self.byfd = {}
        self.pending = 0
        self.nslots = max(1, round(read_interval / SLOT_S)) if read_interval > 0 else 0
        self.slots = [[] for _ in range(self.nslots)]
        self.next_slot = 0
        self.buf = bytearray(RECV_SIZE)
        self.stop_on_video = stop_on_video   # end as soon as every player has its first keyframe
        self.keys = 0
        self.pass_gaps = []            # measured time between two reads of a slot (window)

    # -- callbacks from players
    def on_playing(self, p):
        self.pending -= 1

    def on_gone(self, p):
        if p.state == "failed" and p.t_playing is None:
            self.pending -= 1
        self.byfd.pop(p.fd, None)
        if p.eager:
            try:
                self.ep.unregister(p.fd)
            except (OSError, ValueError):
                pass

    def on_first_key(self, p):
        self.keys += 1
        if self.nslots and not p.probe:
            p.eager = False
            self.ep.unregister(p.fd)
            self.slots[self.next_slot].append(p)
            self.next_slot = (self.next_slot + 1) % self.nslots

    # -- main loop
    def phase(self, name, **info):
        if self.out is not None:
            print(json.dumps({"phase": name, "t": time.time(), **info}), file=self.out, flush=True)

    def run(self):
        t0 = time.monotonic()
        todo = self.probes + self.players
        next_connect = t0
        started = 0
        phase = "connect"
        phase_end = t0 + self.connect_timeout
        window = None
        next_tick = t0 + SLOT_S
        slot = 0
        slot_last = [0.0] * self.nslots
        buf = self.buf
        byfd = self.byfd
        ep = self.ep
        while True:
            now = time.monotonic()
            # start connections, paced and bounded in flight
            while (started < len(todo) and self.pending < self.max_pending and now >= next_connect
                   and phase == "connect"):
                p = todo[started]
                started += 1
                self.pending += 1
                p.start(ep, now)
                if p.state == "connecting":
                    byfd[p.fd] = p
                next_connect += 1.0 / self.connect_rate
            # phase changes
            if phase == "connect" and (now >= phase_end or (started == len(todo) and self.pending <= 0)):
                self.expire_setups(now)
                phase, phase_end = "warmup", now + self.warmup
                self.phase("warmup", playing=sum(p.state == "playing" for p in todo),
                           connect_s=round(now - t0, 2))
            elif phase == "warmup" and now >= phase_end:
                phase, phase_end = "measure", now + self.duration
                window = self.snapshot(now)
                self.phase("measure")
            elif phase == "measure" and now >= phase_end:
                break
            if self.stop_on_video and self.keys == len(todo) and phase != "connect":
                window = window or self.snapshot(now)
                break
            # wait for events until the next slot (or next connect)
            timeout = next_tick - now
            if phase == "connect" and started < len(todo) and self.pending < self.max_pending:
                timeout = min(timeout, next_connect - now)
            if self.nslots == 0:
                timeout = min(0.05, phase_end - now)
            events = ep.poll(max(0.0, timeout))
            now = time.monotonic()
            for fd, ev in events:
                p = byfd.get(fd)
                if p is None:
                    continue
                if p.state == "connecting":
                    p.on_writable(ep)
                else:
                    p.read(buf, now)
            # paced reads: one slot per tick
            if self.nslots:
                now = time.monotonic()
                if now >= next_tick:
                    last = slot_last[slot]
                    if last and phase == "measure":
                        self.pass_gaps.append(now - last)
                    slot_last[slot] = now
                    alive = []
                    for p in self.slots[slot]:
                        if p.state == "playing":
                            p.read(buf, now)
                            if p.state == "playing":
                                alive.append(p)
                    self.slots[slot] = alive
                    slot = (slot + 1) % self.nslots
                    next_tick += SLOT_S
                    if now - next_tick > self.read_interval:   # far behind: do not spin to catch up
                        next_tick = now + SLOT_S
        return self.report(window, time.monotonic())

    def expire_setups(self, now):
        for p in self.probes + self.players:
            if p.state in ("new", "connecting", "handshake", "setup"):
                if p.state == "new":
                    p.state, p.error = "failed", "not started before the connect timeout"
                else:
                    p.fail(f"setup not finished in {self.connect_timeout:g}s ({p.state})")

    def snapshot(self, now):
        for p in self.probes + self.players:
            p.bytes0 = p.received
            p.max_gap = 0.0
            if p.arrivals:
                p.arrivals.clear()
        return {"t": now, "self_cpu": own_cpu_seconds(),
                "cpu": {name: proc_cpu_seconds(pid) for name, pid in self.watch.items()},
                "cpus": read_cpu_times()}

    def report(self, window, now):
        players = self.players
        span = now - window["t"] if window else 0.0
        playing = [p for p in players if p.state == "playing"]
        moved = sum(p.received - p.bytes0 for p in players) if window else 0
        lags = [p.lag_at(now) for p in playing if p.t_first_v is not None]
        servers = {}
        for name, pid in self.watch.items():
            try:
                cpu = (proc_cpu_seconds(pid) - window["cpu"][name]) / span * 100 if span else None
                servers[name] = {"cpu_pct": round(cpu, 1) if cpu is not None else None,
                                 "rss_mb": round(proc_rss_mb(pid), 1)}
            except (OSError, KeyError):
                servers[name] = {"cpu_pct": None, "rss_mb": None, "error": "process gone"}
        errors = {}
        for p in players + self.probes:
            if p.error:
                key = p.error.split(" (")[0][:80]
                errors[key] = errors.get(key, 0) + 1
        result = {
            "players": len(players),
            "connected": len(playing),
            "failed": sum(p.state == "failed" for p in players),
            "disconnects": sum(p.state == "closed" for p in players),
            "with_video": sum(p.t_key is not None for p in players),
            "window_s": round(span, 2),
            "mbps": round(moved * 8 / span / 1e6, 1) if span else 0.0,
            "behind": sum(1 for lag in lags if lag > BEHIND_S),
            "lag_ms": stats(lags, 1000),
            "first_frame_ms": stats([p.t_key - p.t_start for p in players if p.t_key is not None], 1000),
            "max_gap_ms": stats([p.max_gap for p in playing], 1000),
            "regressions": sum(p.regressions for p in players + self.probes),
            "read_interval_ms": round(self.read_interval * 1000),
            "loadgen_cpu_pct": round((own_cpu_seconds() - window["self_cpu"]) / span * 100, 1) if span else None,
            "read_interval_actual_ms": stats(self.pass_gaps, 1000),
            "cpu_busy_pct": cpu_busy(window["cpus"], read_cpu_times()) if window else {},
            "servers": servers,
            "errors": errors,
        }
        if self.probes:
            result["probes"] = [{"url": p.url, "state": p.state, "video_msgs": len(p.arrivals or ()),
                                 "first_frame_ms": round((p.t_key - p.t_start) * 1000, 1) if p.t_key else None,
                                 "max_gap_ms": round(p.max_gap * 1000, 1)}
                                for p in self.probes]
            ref = self.probes[0].arrivals
            result["latency_ms"] = [stats(latency_vs(ref, p.arrivals)) for p in self.probes[1:]]
        return result

    def close(self):
        for p in self.probes + self.players:
            p.close()
        self.ep.close()


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench.loadgen", description=__doc__.split("\n")[0])
    ap.add_argument("urls", nargs="*", help="rtmp://host:port/app/stream to play (round robin)")
    ap.add_argument("-n", type=int, default=1, help="players (spread over the urls)")
    ap.add_argument("--probe", action="append", default=[],
                    help="an eager player recording video arrivals; latency is against the first")
    ap.add_argument("--read-interval", type=float, default=0.1, help="s between reads of a player")
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--max-pending", type=int, default=200, help="setups in flight")
    ap.add_argument("--connect-rate", type=float, default=1000.0, help="new connections per s")
    ap.add_argument("--watch", action="append", default=[], metavar="NAME=PID",
                    help="a process whose CPU and RSS to measure over the window")
    args = ap.parse_args(argv)
    limit = raise_fd_limit()
    if args.n + len(args.probe) + 16 > limit:
        print(f"loadgen: {args.n} players need more than the fd limit {limit}", file=sys.stderr)
        return 2
    watch = dict((w.split("=", 1)[0], int(w.split("=", 1)[1])) for w in args.watch)
    gen = LoadGen(args.urls, args.n if args.urls else 0, args.probe, args.read_interval,
                  args.connect_timeout, args.warmup, args.duration, args.max_pending,
                  args.connect_rate, watch, out=sys.stdout)
    try:
        result = gen.run()
    finally:
        gen.close()
    print(json.dumps({"result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
