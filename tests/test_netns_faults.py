"""Cluster fault tests with hosts as network namespaces (issue 7).

Topology (made by tests/netns.py; nothing touches the root namespace):
    backbone 10.213.1.0/24: origin a .10, origin b .11, edge .2 (eth1), pub .100 (encoders)
    access   10.213.2.0/24: edge .2 (eth0), play .100 (players)
The edge pulls from `origin A B` (A first, sticky); origin_data_timeout is 2 s to keep it short.

Rules:
- Each test builds its own lab; teardown kills every process by pid and deletes the namespaces,
  even after a failure. The module skips with the error text where `ip netns add` is refused.
- Players are tests/netns_player.py processes in the players' namespace recording each message's
  arrival time, type and timestamp. Each test prints one line: players lost, longest gap in
  media after the fault, timestamp regressions, time to recover; and asserts them.
- Phases last a few seconds each, so the whole file runs in about a minute.
"""
import json
import shutil
import signal
import subprocess
import time

import pytest

from tests.netns import PYTHON, Lab, NsServer, Unsupported, probe, sweep_leftovers
from tests.rtmpclient import timestamp_regressions

A, B, EDGE, EDGE_ACCESS = "10.213.1.10", "10.213.1.11", "10.213.1.2", "10.213.2.2"
STREAM = "live/livestream"
DATA_TIMEOUT = 2
PLAYERS = 4

ORIGIN = """listen 1935;
srs_log_tank console;
vhost __defaultVhost__ {{ {extra} }}
"""
EDGE_CONF = f"""listen 1935;
srs_log_tank console;
vhost __defaultVhost__ {{
    cluster {{
        mode remote;
        origin {A}:1935 {B}:1935;
        edge_idle_timeout 2;
        origin_data_timeout {DATA_TIMEOUT};
    }}
}}
"""


@pytest.fixture(scope="module")
def netns_ok():
    if shutil.which("ip") is None or shutil.which("tc") is None:
        pytest.skip("iproute2 (ip, tc) not installed")
    sweep_leftovers()
    error = probe()
    if error:
        pytest.skip(f"network namespaces not permitted here: {error}")


class Cluster:
    def __init__(self, lab, directory, media):
        self.lab = lab
        self.dir = directory
        self.media = media
        lab.add_host("a", ("br1", f"{A}/24"))
        lab.add_host("b", ("br1", f"{B}/24"))
        lab.add_host("edge", ("br0", f"{EDGE_ACCESS}/24"), ("br1", f"{EDGE}/24"))
        lab.add_host("pub", ("br1", "10.213.1.100/24"))
        lab.add_host("play", ("br0", "10.213.2.100/24"))
        self.publishers = {}

    def start(self, b_forwards_to_a=False):
        forward = f"forward {{ enabled on; destination {A}:1935; }}" if b_forwards_to_a else ""
        self.a = NsServer(self.lab, "a", ORIGIN.format(extra=""), self.dir)
        self.b = NsServer(self.lab, "b", ORIGIN.format(extra=forward), self.dir)
        self.edge = NsServer(self.lab, "edge", EDGE_CONF, self.dir)
        for server in (self.a, self.b, self.edge):
            server.spawn()
        for server in (self.a, self.b, self.edge):
            server.wait_ready()

    def publish(self, addr):
        """ffmpeg from the encoders' host, looping the test file in real time."""
        self.publishers[addr] = self.lab.spawn("pub", [
            "ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(self.media),
            "-c", "copy", "-f", "flv", f"rtmp://{addr}:1935/{STREAM}"])

    def kill_publisher(self, addr):
        proc = self.publishers.pop(addr)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)

    def play(self, seconds, n=PLAYERS):
        """n players on the edge, each reading `seconds` once its play is answered."""
        runs = []
        for i in range(n):
            out = self.dir / f"player{i}.json"
            proc = self.lab.spawn("play", [
                PYTHON, "tests/netns_player.py", f"rtmp://{EDGE_ACCESS}:1935/{STREAM}",
                str(seconds), str(out)], stdout=subprocess.PIPE, text=True)
            first = proc.stdout.readline().strip()
            assert first == "playing", f"player {i}: {first}"
            runs.append((proc, out))
        return runs


def published(server):
    return "publish __defaultVhost__/live/livestream from" in server.log_text(current=True)


def plays(server):
    return server.log_text(current=True).count("play __defaultVhost__/live/livestream to")


def wait_until(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timeout: {what}"
        time.sleep(0.1)


@pytest.fixture
def cluster(netns_ok, tmp_path, media_file):
    lab = Lab()
    try:
        yield Cluster(lab, tmp_path, media_file)
    finally:
        lab.close()


# ---------------------------------------------------------------- what the players saw
def results(runs, timeout=30):
    out = []
    for proc, path in runs:
        proc.wait(timeout)
        out.append(json.loads(path.read_text()))
    return out


def lost(player):
    """Refused, disconnected, or no media in the last second of its run."""
    media = player["media"]
    return (not player["played"] or player["closed"] or not media
            or player["ended"] - media[-1][0] > 1.0)


def longest_gap(player, since):
    """The longest pause (s) between messages around or after `since`."""
    times = [m[0] for m in player["media"]]
    return max((b - a for a, b in zip(times, times[1:]) if b >= since), default=0.0)


def recovery(player, since):
    """Seconds from `since` to the first video sequence header after it: media from another
    origin (or a new publish) starts with one."""
    return next((at - since for at, _, _, kind in player["media"] if at >= since and kind == "h"),
                float("inf"))


def report(name, players, fault_at, recover_from, recovers=True):
    """Print and return the figures of one fault, over all players (worst case)."""
    figures = {
        "lost": sum(lost(p) for p in players),
        "gap": max(longest_gap(p, fault_at) for p in players),
        "regressions": sum(timestamp_regressions([(t, ts, None) for _, t, ts, _ in p["media"]])
                           for p in players),
        "recovery": max(recovery(p, recover_from) for p in players),
    }
    recovered = f"recovered in {figures['recovery']:.2f} s" if recovers else "no switch"
    print(f"\n{name}: players {len(players)}, lost {figures['lost']}, longest gap "
          f"{figures['gap'] * 1000:.0f} ms, timestamp regressions {figures['regressions']}, "
          f"{recovered}")
    return figures


def switches(edge):
    """Origin switches the edge logged (one line each, after media resumed)."""
    return edge.log_text().count(", gap ")


def pulls(edge, addr):
    return edge.log_text().count(f"pulling livestream from {addr}:1935")


def two_publishers(c):
    c.start()
    c.publish(A)
    c.publish(B)
    wait_until(lambda: published(c.a) and published(c.b), 10, "publishers on A and B")


def run_fault(c, name, seconds, fault, before=2.0, recovers=True):
    """Players play `seconds`; `before` s in, fault() runs (it may return the time recovery
    counts from, else the fault's start); returns report()'s figures."""
    runs = c.play(seconds)
    time.sleep(before)
    at = time.time()
    recover_from = fault() or at
    return report(name, results(runs), at, recover_from, recovers)


# ---------------------------------------------------------------- faults
def test_sigkill_origin_a(cluster):
    c = cluster
    two_publishers(c)

    def fault():
        assert plays(c.a) == 1 and plays(c.b) == 0
        c.a.kill()
    f = run_fault(c, "SIGKILL origin A", 6, fault)
    assert f["lost"] == 0 and f["regressions"] == 0
    assert f["gap"] < 2.0 and f["recovery"] < 2.0
    assert plays(c.b) == 1 and switches(c.edge) == 1


def test_link_down_origin_a(cluster):
    """A keeps running and its sockets stay open: the edge notices by origin_data_timeout."""
    c = cluster
    two_publishers(c)
    f = run_fault(c, "link down on A", 7, lambda: c.lab.link_down("a"))
    assert c.a.proc.poll() is None
    assert f["lost"] == 0 and f["regressions"] == 0
    assert f["gap"] < DATA_TIMEOUT + 1.5 and f["recovery"] < DATA_TIMEOUT + 1.5
    assert plays(c.b) == 1 and switches(c.edge) == 1


def test_netem_delay_loss_edge_origin(cluster):
    c = cluster
    two_publishers(c)

    def fault():
        try:
            how = c.lab.impair("edge", 1, 100, 1)   # the edge's backbone link, both ways
        except Unsupported as e:
            pytest.skip(str(e))
        print(f"\nimpairment by {how}")
    f = run_fault(c, "100ms delay 1% loss edge<->origins", 6.5, fault, before=1.5,
                  recovers=False)
    assert f["lost"] == 0 and f["regressions"] == 0
    assert f["gap"] < DATA_TIMEOUT                # a hiccup, never a data timeout
    assert switches(c.edge) == 0 and plays(c.b) == 0, "no failover for a slow, lossy link"


def test_restart_a_edge_stays_on_b(cluster):
    """Sticky: with A back (and its stream) for ~4 s, the edge stays on B."""
    c = cluster
    two_publishers(c)

    def fault():
        c.a.kill()
        time.sleep(1)
        c.a.spawn().wait_ready()
        c.publish(A)
        wait_until(lambda: published(c.a), 5, "publisher back on A")
    f = run_fault(c, "restart A after failover", 8, fault)
    assert f["lost"] == 0 and f["regressions"] == 0 and f["recovery"] < 2.0
    assert plays(c.a) == 0, "the edge went back to A"
    assert pulls(c.edge, A) == 1 and pulls(c.edge, B) == 1 and switches(c.edge) == 1


def test_publisher_killed_and_back(cluster):
    """One encoder to B, B forwards to A: for 2 s no origin has the stream; recovery counts
    from the encoder's return."""
    c = cluster
    c.start(b_forwards_to_a=True)
    c.publish(B)
    wait_until(lambda: published(c.b) and published(c.a), 10, "publish on B forwarded to A")

    def fault():
        c.kill_publisher(B)
        time.sleep(2)
        back = time.time()
        c.publish(B)
        return back
    f = run_fault(c, "publisher killed, back after 2 s", 9, fault)
    assert f["lost"] == 0 and f["regressions"] == 0
    assert f["recovery"] < DATA_TIMEOUT + 2.0
