"""Publish generator: N RTMP publishers of one FLV file in one process, on raw non-blocking
sockets and one epoll (what N `ffmpeg -re -c copy` would send, without N processes).

Rules:
- Setup per publisher: simple handshake, connect, createStream, publish (waiting for each
  answer, like ffmpeg), with Set Chunk Size first (the write mode's chunk size).
- Media is paced in real time and the file loops with continuing timestamps. Publishers start
  staggered over one GOP so their keyframes do not line up. Server acks and pings are read and
  answered. How the bytes are written is `--writes` (checked with strace against the real
  clients, issue 22; sockets keep Nagle on, as ffmpeg's and OBS's do):
  - `ffmpeg` (default): what `ffmpeg -re -c copy -f flv rtmp://` 5.1 does: chunk size 60000,
    each message at its due time as one write of its chunk header (12 bytes fmt 0 for the first
    message of a chunk stream, then 8 bytes fmt 1) and one write of the payload (a message over
    60000 bytes: header, 60000 bytes, 1-byte fmt 3 header, rest...: one write each).
  - `obs`: what OBS's librtmp (plugins/obs-outputs/librtmp/rtmp.c RTMP_SendPacket) does: chunk
    size 4096, each message at its due time, one write per chunk (header and chunk data in one
    buffer).
  - `bundled`: every 20 ms each publisher sends all the messages due in ONE write, chunk size
    4096. Friendlier to the server than any real encoder (fewer readable events): only for an
    extra, labelled row.
- A publisher whose socket is full keeps its bytes for the next tick (nothing is skipped), so a
  server that cannot keep up shows as `late_ms` (how far behind the send schedule it fell).
- Prints one JSON line `{"phase": "publishing", ...}` once all are set up (or the setup bound
  passed), then `{"result": ...}` when `--seconds` are over or on SIGTERM.
"""
import argparse
import heapq
import json
import select
import signal
import sys
import time

from bench.loadgen import Player, own_cpu_seconds, raise_fd_limit
from lib.media.flv import iter_tags
from lib.rtmp.chunk import encode_message

WRITES = ("ffmpeg", "obs", "bundled")
CHUNK_SIZE = {"ffmpeg": 60000, "obs": 4096, "bundled": 4096}
TICK_S = 0.02                  # bundled mode's tick
MAX_WAIT_S = 0.05              # paced modes: longest epoll wait (acks, pings)
STAGGER_S = 2.0
_CSID = {8: 4, 9: 6, 18: 5}


def load_tags(path):
    """[(type, ts, payload)] of the file and its duration in ms (for looping)."""
    with open(path, "rb") as f:
        tags = [(t, ts, p) for t, ts, p in iter_tags(f.read()) if t in _CSID]
    media = [ts for t, ts, _ in tags if t != 18]
    # the loop restarts after the LATEST timestamp (audio may end after the last video tag, an
    # AVC end-of-sequence): looping after the last tag's made audio go back in time at each loop
    step = (max(media) - min(media)) / max(1, len(media) - 1)
    return tags, int(max(media) + step)


class Pub(Player):
    """One publisher: the player's setup and reader, with publish instead of play."""

    def __init__(self, gen, url, delay, writes="ffmpeg"):
        super().__init__(gen, url)
        self.delay = delay
        self.writes = writes
        self.chunk_size_out = CHUNK_SIZE[writes]
        self.last_ts = {}              # csid -> timestamp of its last message (ffmpeg: fmt 1 deltas)
        self.writes_done = 0
        self.idx = 0
        self.loop = 0
        self.t0 = None                 # wall time of media time 0
        self.late = 0.0
        self.sent_bytes = 0

    START_CODE = "NetStream.Publish.Start"

    def create_stream_request(self):
        return (encode_message(2, 1, 0, 0, self.chunk_size_out.to_bytes(4, "big"), 128)
                + super().create_stream_request())

    def stream_request(self):
        return self.command(8, self.stream_id, "publish", 3.0, None, self.stream, "live")

    def on_video_start(self, ch, now):
        pass

    def pump(self, tags, duration, now):
        """Send the tags due by `now` in one write."""
        if self.t0 is None:
            self.t0 = self.t_playing + self.delay
        if now < self.t0:
            return
        due_ms = (now - self.t0) * 1000.0
        parts = []
        while True:
            t, ts, payload = tags[self.idx]
            ts += self.loop * duration
            if ts > due_ms:
                break
            parts.append(encode_message(_CSID[t], t, self.stream_id, ts, payload, CHUNK_SIZE["bundled"]))
            self.idx += 1
            if self.idx == len(tags):
                self.idx = 0
                self.loop += 1
        if parts:
            data = b"".join(parts)
            self.sent_bytes += len(data)
            self.writes_done += 1
            self.send(data)
        if self.out:
            self.late = max(self.late, due_ms - (tags[self.idx][1] + self.loop * duration))

    def pump_paced(self, tags, duration, now):
        """ffmpeg/obs: send each due message in that client's writes; returns the wall time the
        next message is due."""
        if self.t0 is None:
            self.t0 = self.t_playing + self.delay
        due_ms = (now - self.t0) * 1000.0
        while True:
            t, ts, payload = tags[self.idx]
            ts += self.loop * duration
            if ts > due_ms:
                break
            if self.out:               # the socket was full: how far behind the schedule
                self.late = max(self.late, due_ms - ts)
            for part in self.message_writes(_CSID[t], t, ts, payload):
                self.write(part)
            self.idx += 1
            if self.idx == len(tags):
                self.idx = 0
                self.loop += 1
        return self.t0 + (tags[self.idx][1] + self.loop * duration) / 1000.0

    def message_writes(self, csid, type_id, ts, payload):
        """The writes one message takes in this client's pattern."""
        size = self.chunk_size_out
        n = len(payload)
        if self.writes == "obs":
            msg = encode_message(csid, type_id, self.stream_id, ts, payload, size)
            continued = (n - 1) // size if n else 0      # 1-byte fmt 3 headers
            first = len(msg) - n - continued + min(n, size)   # header + first chunk's data
            out = [msg[:first]]
            out += [msg[i:i + 1 + size] for i in range(first, len(msg), 1 + size)]
            return out
        last = self.last_ts.get(csid)
        self.last_ts[csid] = ts
        if last is None:               # fmt 0: absolute timestamp, 12 bytes
            head = (bytes((csid,)) + ts.to_bytes(3, "big") + n.to_bytes(3, "big")
                    + bytes((type_id,)) + self.stream_id.to_bytes(4, "little"))
        else:                          # fmt 1: timestamp delta, 8 bytes
            head = (bytes((0x40 | csid,)) + (ts - last).to_bytes(3, "big") + n.to_bytes(3, "big")
                    + bytes((type_id,)))
        out = [head, payload[:size]]
        for i in range(size, n, size):
            out += [bytes((0xC0 | csid,)), payload[i:i + size]]
        return out

    def write(self, data):
        """One write (one sendto) of `data`; behind a full socket it queues."""
        self.sent_bytes += len(data)
        if self.out:
            self.out += data
            return
        self.writes_done += 1
        self.send(data)


def run(urls, n, media, seconds, setup_timeout, out=sys.stdout, writes="ffmpeg"):
    tags, duration = load_tags(media)
    gen = type("Gen", (), {})()
    gen.pending = n
    gen.on_playing = lambda p: setattr(gen, "pending", gen.pending - 1)

    def on_gone(p):
        byfd.pop(p.fd, None)
        if p.t_playing is None:
            gen.pending -= 1
    gen.on_gone = on_gone
    pubs = [Pub(gen, urls[i % len(urls)].replace("{i}", str(i)), STAGGER_S * i / max(1, n), writes)
            for i in range(n)]
    paced = writes != "bundled"
    due = []                           # paced: heap of (wall time the next message is due, i)
    started = set()
    ep = select.epoll()
    byfd = {}
    buf = bytearray(65536)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    t_start = time.monotonic()
    for p in pubs:
        p.start(ep, t_start)
        byfd[p.fd] = p
    announced = False
    end = None
    cpu0 = own_cpu_seconds()
    while not stop:
        now = time.monotonic()
        if not announced and (gen.pending <= 0 or now - t_start > setup_timeout):
            announced = True
            end = now + seconds
            cpu0, t_cpu0 = own_cpu_seconds(), now
            print(json.dumps({"phase": "publishing", "t": time.time(),
                              "publishing": sum(p.state == "playing" for p in pubs),
                              "setup_s": round(now - t_start, 2)}), file=out, flush=True)
        if end is not None and now >= end:
            break
        if paced:
            wait = min(MAX_WAIT_S, max(0.0, due[0][0] - now)) if due else MAX_WAIT_S
        else:
            wait = TICK_S
        for fd, ev in ep.poll(wait):
            p = byfd.get(fd)
            if p is None:
                continue
            if p.state == "connecting":
                p.on_writable(ep)
            else:
                p.read(buf, now)
        now = time.monotonic()
        if not paced:
            for p in pubs:
                if p.state == "playing":
                    p.pump(tags, duration, now)
            continue
        for i, p in enumerate(pubs):   # newly publishing: first due at its staggered start
            if p.state == "playing" and i not in started:
                started.add(i)
                heapq.heappush(due, (p.t_playing + p.delay, i))
        while due and due[0][0] <= now:
            _, i = heapq.heappop(due)
            p = pubs[i]
            if p.state == "playing":
                if p.out:
                    p.send(b"")
                heapq.heappush(due, (p.pump_paced(tags, duration, now), i))
    now = time.monotonic()
    span = now - t_cpu0 if announced else 0
    errors = {}
    for p in pubs:
        if p.error:
            errors[p.error[:80]] = errors.get(p.error[:80], 0) + 1
    result = {"publishers": n, "publishing": sum(p.state == "playing" for p in pubs),
              "mbps": round(sum(p.sent_bytes for p in pubs) * 8 / max(1e-9, now - t_start) / 1e6, 1),
              "late_ms_max": round(max((p.late for p in pubs), default=0) * 1.0, 1),
              "writes": writes, "sends": sum(p.writes_done for p in pubs),
              "pubgen_cpu_pct": round((own_cpu_seconds() - cpu0) / span * 100, 1) if span else None,
              "errors": errors}
    for p in pubs:
        p.close()
    print(json.dumps({"result": result}), file=out, flush=True)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench.pubgen", description=__doc__.split("\n")[0])
    ap.add_argument("urls", nargs="+", help="rtmp://host:port/app/stream to publish (round robin; {i} = publisher number)")
    ap.add_argument("-n", type=int, default=1, help="publishers (spread over the urls)")
    ap.add_argument("--media", required=True, help="FLV file to publish in a loop")
    ap.add_argument("--seconds", type=float, default=3600.0, help="publish time after setup")
    ap.add_argument("--setup-timeout", type=float, default=30.0)
    ap.add_argument("--writes", choices=WRITES, default="ffmpeg",
                    help="write pattern: ffmpeg (header write + payload write per message, "
                         "default), obs (one write per 4096-byte chunk), bundled (one write per "
                         "20 ms tick: friendlier than real encoders)")
    args = ap.parse_args(argv)
    raise_fd_limit()
    run(args.urls, args.n, args.media, args.seconds, args.setup_timeout, writes=args.writes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
