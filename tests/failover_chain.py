"""Where frames go when an origin dies under a two-layer edge (issue 20, point 15).

Chain: one publisher sends the same numbered frames to origins A and B (as an encoder
publishing to both); edge1 pulls from A (B as backup); edge2 pulls from edge1; players on A,
edge1 and edge2 read everything. A is stopped (SIGTERM or SIGKILL) mid-stream. Every video
frame carries its number, so each player's losses are exact:

- `a_last`: the last frame the player on A got: what A sent before it went away.
- `b_first`: the first frame from B after the switch (B's GOP cache starts at a keyframe).
- lost on edge1 = frames <= a_last that edge1's player misses: media A sent that the
  first-layer edge lost (ours).
- failover gap = frames after a_last and before b_first: neither origin sent them to edge1
  (inherent: A was gone, B's cache starts at its last keyframe).
- lost on edge2 = frames edge1's player got and edge2's player misses (ours).

Run by tests/test_edge_failover_loss.py; `python -m tests.failover_chain` prints the figures.
"""
import signal
import tempfile
import threading
import time
from pathlib import Path

from tests.conftest import ServerProc
from tests.rtmpclient import RtmpTestClient, longest_pause
from tests.test_nothing_lost import AUDIO_SH, VIDEO_SH, audio_frame, frame_numbers, video_frame

FPS = 25
GOP = 25                       # a keyframe a second


def origin_conf():
    return "listen {port};\nsrs_log_tank console;\nvhost __defaultVhost__ { }\n"


def edge_conf(*upstreams):
    origins = " ".join(f"127.0.0.1:{u.port}" for u in upstreams)
    return ("listen {port};\nsrs_log_tank console;\nvhost __defaultVhost__ {\n"
            f"    cluster {{ mode remote; origin {origins}; }}\n}}\n")


class DualPublisher(threading.Thread):
    """Sends frame i to every origin at i/FPS seconds (real time); an origin that fails is
    dropped, the others go on."""

    def __init__(self, urls, seconds):
        super().__init__(daemon=True)
        self.clients = []
        for url in urls:
            c = RtmpTestClient(url)
            assert c.pump_until(lambda c=c: c.session.state == "connected")
            assert c.publish()
            c.send_media(9, 0, VIDEO_SH)
            c.send_media(8, 0, AUDIO_SH)
            self.clients.append(c)
        self.frames = seconds * FPS
        self.sent_at = {}

    def run(self):
        t0 = time.monotonic()
        live = list(self.clients)
        for i in range(self.frames):
            time.sleep(max(0.0, t0 + i / FPS - time.monotonic()))
            self.sent_at[i] = time.monotonic()
            for c in list(live):
                try:
                    c.send_media(9, i * 40, video_frame(i, i % GOP == 0))
                    c.send_media(8, i * 40, audio_frame())
                except OSError:
                    live.remove(c)


class Reader(threading.Thread):
    def __init__(self, url):
        super().__init__(daemon=True)
        self.client = RtmpTestClient(url)
        assert self.client.pump_until(lambda: self.client.session.state == "connected")
        assert self.client.play()
        self.stop = threading.Event()

    def run(self):
        c = self.client
        c.pump_until(lambda: self.stop.is_set() or c.closed, 120)

    def frames(self):
        return frame_numbers(self.client.media)

    def arrivals(self):
        """(frame, arrival time) for video frames, in order."""
        out = []
        for (t, _, p), at in zip(self.client.media, self.client.arrivals):
            if t == 9 and len(p) >= 9 and p[1] == 0x01:
                out.append((int.from_bytes(p[5:9], "big"), at))
        return out


def run_chain(tmp, sig, seconds=8, kill_at=4.0):
    tmp = Path(tmp)
    a = ServerProc(tmp, origin_conf(), name="a").start()
    b = ServerProc(tmp, origin_conf(), name="b").start()
    edge1 = ServerProc(tmp, edge_conf(a, b), name="edge1").start()
    edge2 = ServerProc(tmp, edge_conf(edge1), name="edge2").start()
    procs = [a, b, edge1, edge2]
    try:
        pub = DualPublisher([a.url(), b.url()], seconds)
        pub.start()
        time.sleep(0.5)
        readers = {"a": Reader(a.url()), "edge1": Reader(edge1.url()), "edge2": Reader(edge2.url())}
        for r in readers.values():
            r.start()
        time.sleep(max(0.0, kill_at - 0.5))
        killed_at, killed_wall = time.monotonic(), time.time()
        a.send_signal(sig)
        pub.join(seconds + 5)
        time.sleep(1.0)                           # the tail reaches every player
        for r in readers.values():
            r.stop.set()
            r.join(5)
        return analyse(readers, pub, killed_at) | {
            "signal": signal.Signals(sig).name,
            "pause_edge2_ms": round(longest_pause(readers["edge2"].client, killed_wall - 0.5) * 1000)}
    finally:
        for p in procs:
            p.stop(signal.SIGKILL)


def analyse(readers, pub, killed_at):
    on_a, on_e1, on_e2 = (readers[k].frames() for k in ("a", "edge1", "edge2"))
    a_last = max(on_a)
    published_by_kill = max(i for i, t in pub.sent_at.items() if t <= killed_at)
    e1 = readers["edge1"].arrivals()
    # the switch: the first frame edge1's player got after A's last frame, in arrival order
    after_a = [f for f, _ in e1 if f > a_last]
    b_first = after_a[0] if after_a else None
    start = max(min(on_e1), min(on_e2))            # compare from when both players joined
    seen1, seen2 = set(on_e1), set(on_e2)
    lost_e1 = sorted(f for f in range(start, a_last + 1) if f not in seen1)
    gap = list(range(a_last + 1, b_first)) if b_first is not None else []
    lost_e2 = sorted(f for f in seen1 if f >= start and f not in seen2)
    last = max(on_e1)
    missing_e2 = sorted(f for f in range(start, last + 1) if f not in seen2)
    return {"published_by_kill": published_by_kill, "a_last": a_last, "b_first": b_first,
            "unsent_by_a": list(range(a_last + 1, published_by_kill + 1)),
            "lost_edge1": lost_e1, "failover_gap": gap, "lost_edge2": lost_e2,
            "missing_edge2": missing_e2, "dup_edge2": len(on_e2) - len(seen2),
            "frames_edge2": len(seen2)}


def summary(r):
    return (f"{r['signal']}: A did not send {len(r['unsent_by_a'])}, lost on edge1 "
            f"{len(r['lost_edge1'])}, failover gap {len(r['failover_gap'])}, lost on edge2 "
            f"{len(r['lost_edge2'])}, edge2 missing {len(r['missing_edge2'])} (duplicates "
            f"{r['dup_edge2']}), edge2 pause {r['pause_edge2_ms']} ms")


if __name__ == "__main__":
    import sys
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    kill_at = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as d:
                print(summary(run_chain(d, sig, kill_at=kill_at)), flush=True)
