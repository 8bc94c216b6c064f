"""The origin cluster (issue 21) with hosts as network namespaces and faults: placement of 60
streams, an origin killed under players, an origin cut off Redis, Redis restarted empty, and
the seed's CDN in miniature (directory edges as a mid tier, leaf edges below them).

Topology: tests/netns_cluster.py. Directory TTL 3 s (renewal every second).

Rules:
- Each test builds its own lab; teardown kills every process by pid and deletes the namespaces.
  The module skips where namespaces, redis-server or ffmpeg are missing.
- Encoders: bench.pubgen (N ffmpeg-style publishers in one process, chunk size 4096, paced in
  real time) where they only need to publish; ffmpeg in a shell retry loop (as OBS reconnects)
  where they must come back after a fault. Players: tests/netns_player.py (per-message arrival
  times) or bench.loadgen (many players, one process).
- Facts come from the APIs and Redis (the Sampler, every 100 ms), never from log text.
- Media is a small ~150 kbps file so 60 streams fit on 2 cores; each test prints its figures.
"""
import json
import shutil
import subprocess
import sys
import time

import pytest

from tests.netns import probe, sweep_leftovers
from tests.netns_cluster import ClusterLab, NsWorker, Sampler, edge_ip, leaf_ip, origin_ip
from tests.rtmpclient import RtmpTestClient, timestamp_regressions

TTL = 3
RETRY_DELAY = 1


@pytest.fixture(scope="module")
def netns_ok():
    for tool in ("ip", "redis-server", "ffmpeg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    sweep_leftovers()
    error = probe()
    if error:
        pytest.skip(f"network namespaces not permitted here: {error}")


@pytest.fixture(scope="module")
def small_media(tmp_path_factory):
    """A 10 s H.264/AAC FLV, 160x120, 15 fps, 2 s GOP, ~150 kbps: cheap to publish 60 times."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    out = tmp_path_factory.mktemp("media") / "small.flv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc2=size=160x120:rate=15", "-f", "lavfi",
                    "-i", "sine=frequency=440:sample_rate=22050", "-t", "10", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
                    "-b:v", "100k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k",
                    "-f", "flv", str(out)], check=True, timeout=60)
    return out


@pytest.fixture
def make_cluster(netns_ok, tmp_path):
    made = []

    def make(**kw):
        c = ClusterLab(tmp_path, ttl=TTL, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def spread(owners, ids):
    counts = [list(owners.values()).count(i) for i in ids]
    return counts, max(counts) / max(1, min(counts))


# ---------------------------------------------------------------- 1. placement
def test_sixty_streams_through_two_edges_land_once_each_spread_over_three_origins(
        make_cluster, small_media):
    c = make_cluster(origins=3, edges=2)
    sampler = Sampler(c)
    n = 60
    started = time.time()
    c.pubgen([f"rtmp://{edge_ip(0)}:1935/live/s{{i}}", f"rtmp://{edge_ip(1)}:1935/live/s{{i}}"],
             n, small_media)
    owners = c.wait(lambda: (lambda o: o if len(o) == n else None)(c.owners()), 40,
                    "every stream owned")
    placed = time.time() - started

    def all_live():
        _, on, _ = sampler.last()
        return len(on) == n
    c.wait(all_live, 20, "every stream published on an origin")
    time.sleep(3)                                   # a few renewals with everything live
    sampler.stop()
    ids = sorted(c.members())
    counts, ratio = spread(c.owners(), ids)
    dups = sampler.duplicates()
    print(f"\nplacement: {n} streams in {placed:.1f} s, per origin {counts} (max/min "
          f"{ratio:.2f}), {len(sampler.samples)} samples, duplicates {len(dups)}")
    assert not dups, dups[:5]
    assert ratio <= 1.5, counts
    _, on, redis_owners = sampler.last()
    assert sorted(on) == sorted(owners)
    for name, (where,) in on.items():               # the origin publishing it is its owner
        assert c.members()[redis_owners[name]].startswith(origin_ip(where) + ":")


# ---------------------------------------------------------------- 2. origin death
def player_results(runs, timeout=40):
    out = []
    for proc, path in runs:
        proc.wait(timeout)
        out.append(json.loads(path.read_text()))
    return out


def resumed_after(player, since):
    """Seconds from `since` to the first video sequence header after it (media from the new
    owner starts with one)."""
    return next((at - since for at, _, _, kind in player["media"] if at >= since and kind == "h"),
                float("inf"))


def disconnected(player):
    media = player["media"]
    return (not player["played"] or player["closed"] or not media
            or player["ended"] - media[-1][0] > 1.5)


def regressions(player):
    return timestamp_regressions([(t, ts, None) for _, t, ts, _ in player["media"]])


def longest_gap(player):
    times = [m[0] for m in player["media"]]
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def test_origin_killed_under_edge_players_its_streams_come_back_on_survivors(
        make_cluster, small_media):
    """kill -9 of an origin whose streams are played through both edges while the encoders
    (ffmpeg in a retry loop, publishing through the edges) reconnect."""
    c = make_cluster(origins=3, edges=2)
    n = 12
    for i in range(n):
        c.encoder_loop(f"rtmp://{edge_ip(i % 2)}:1935/live/d{i}", small_media, RETRY_DELAY)
    owners = c.wait(lambda: (lambda o: o if len(o) == n else None)(c.owners()), 30,
                    "every stream owned")
    victim_id = max(set(owners.values()), key=list(owners.values()).count)
    victim = c.origin_by_id(victim_id)
    streams = sorted(s for s, o in owners.items() if o == victim_id)
    seconds = 2 * TTL + RETRY_DELAY + 8
    runs = [c.player(f"rtmp://{edge_ip(e)}:1935/live/{s}", seconds, f"p-{s}-{e}")
            for s in streams for e in (0, 1)]
    for proc, _ in runs:
        assert proc.stdout.readline().strip() == "playing"
    sampler = Sampler(c)
    time.sleep(2)                                   # media flows through both edges
    killed = time.time()
    victim.kill()
    survivors = c.wait(lambda: (lambda o: o if len(o) == n and victim_id not in o.values()
                                else None)(c.owners()), 2 * TTL + RETRY_DELAY + 10,
                       "every stream owned by a survivor")
    players = player_results(runs)
    sampler.stop()
    resumed = [resumed_after(p, killed) for p in players]
    print(f"\norigin death: {len(streams)} of {n} streams on the killed origin, "
          f"{len(players)} edge players, media again after {max(resumed):.2f} s (worst), "
          f"median {sorted(resumed)[len(resumed) // 2]:.2f} s, target < {2 * TTL + RETRY_DELAY} s; "
          f"disconnected {sum(map(disconnected, players))}, regressions "
          f"{sum(map(regressions, players))}, duplicates {len(sampler.duplicates())}")
    assert sum(map(disconnected, players)) == 0
    assert sum(map(regressions, players)) == 0
    assert max(resumed) < 2 * TTL + RETRY_DELAY
    assert not sampler.duplicates()
    _, on, _ = sampler.last()
    assert sorted(on) == sorted(survivors)


# ---------------------------------------------------------------- 3. Redis faults
def publish_refused_from(c, url):
    """A publish (our RTMP client, from the encoders' host): (refused, statuses)."""
    worker = NsWorker(c.lab, "pub")

    def attempt():
        client = RtmpTestClient(url, timeout=6)
        try:
            client.publish(timeout=6)
            return client.session.state != "publishing", client.statuses
        finally:
            client.close()
    try:
        return worker.call(attempt, 20)
    finally:
        worker.close()


def active_on(sample, name):
    return sample[1].get(name, [])


def test_origin_cut_off_redis_keeps_live_streams_refuses_new_ones_and_yields_after(
        make_cluster, small_media):
    """Origin o0 loses its link to Redis for 2 x TTL: its players keep media, a new publish
    there is refused, a stream whose encoder moved to o1 meanwhile stays on o1, and o0 stops
    its own copy of it within one retry interval of the link coming back."""
    c = make_cluster(origins=2, edges=1)
    o0 = f"rtmp://{origin_ip(0)}:1935/live"
    c.encoder_loop(f"{o0}/r1", small_media, RETRY_DELAY)
    c.lab.spawn("pub", ["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i",
                        str(small_media), "-c", "copy", "-f", "flv", f"{o0}/r2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ids = c.members()
    o0_id = next(i for i, a in ids.items() if a.startswith(origin_ip(0) + ":"))
    o1_id = next(i for i, a in ids.items() if a.startswith(origin_ip(1) + ":"))
    c.wait(lambda: c.owners() == {"r1": o0_id, "r2": o0_id}, 20, "r1 and r2 on o0")
    seconds = 2 * TTL + 8
    runs = [c.player(f"{o0}/r1", seconds, "r1-at-o0"),
            c.player(f"rtmp://{edge_ip(0)}:1935/live/r1", seconds, "r1-at-edge"),
            c.player(f"rtmp://{edge_ip(0)}:1935/live/r2", seconds, "r2-at-edge")]
    for proc, _ in runs:
        assert proc.stdout.readline().strip() == "playing"
    sampler = Sampler(c)
    time.sleep(1.5)
    cut = time.time()
    c.lab.link_down("o0", "eth1")
    # r2's lease lapses (o0 cannot renew it); its encoder moves to o1, as OBS would
    c.wait(lambda: "r2" not in c.owners(), TTL + 2, "r2's lease expired")
    c.encoder_loop(f"rtmp://{origin_ip(1)}:1935/live/r2", small_media, RETRY_DELAY)
    c.wait(lambda: c.owners().get("r2") == o1_id, 10, "r2 claimed by o1")
    refused, statuses = publish_refused_from(c, f"{o0}/r3")
    assert refused, statuses
    time.sleep(max(0.0, cut + 2 * TTL - time.time()))
    c.lab.exec("o0", "ip", "link", "set", "eth1", "up")
    c.store_route("o0")
    back = time.time()
    c.wait(lambda: c.owners().get("r1") == o0_id, 5, "r1 re-claimed by o0")
    c.wait(lambda: active_on(sampler.last(), "r2") == [1], 5, "o0 stopped its copy of r2")
    players = player_results(runs)
    sampler.stop()
    stopped = next(at for at, on, _ in sampler.samples if at > back and on.get("r2") == [1])
    during = sampler.duplicates(cut, back)
    after = sampler.duplicates(back + 1.0 + sampler.interval * 2)
    print(f"\nRedis cut off o0 for {back - cut:.1f} s: r3 refused ({statuses[-1:]}), two copies "
          f"of r2 seen in {len(during)} samples while cut off, o0 stopped its copy "
          f"{stopped - back:.2f} s after the link came back, duplicates after {len(after)}; "
          f"players disconnected {sum(map(disconnected, players))}, longest media gap "
          f"{max(longest_gap(p) for p in players):.2f} s, regressions "
          f"{sum(map(regressions, players))}")
    assert not after, after[:5]
    assert stopped - back < 1.0 + 1.0       # one retry interval, plus reconnecting to Redis
    assert sum(map(disconnected, players)) == 0
    assert sum(map(regressions, players)) == 0
    r1_players = players[:2]
    assert max(longest_gap(p) for p in r1_players) < 1.0      # live went on through the cut


def test_redis_restarted_empty_every_live_stream_is_reclaimed(make_cluster, small_media):
    c = make_cluster(origins=2, edges=1)
    n = 6
    c.pubgen([f"rtmp://{edge_ip(0)}:1935/live/k{{i}}"], n, small_media)
    before = c.wait(lambda: (lambda o: o if len(o) == n else None)(c.owners()), 20,
                    "every stream owned")
    runs = [c.player(f"rtmp://{edge_ip(0)}:1935/live/k{i}", 8, f"k{i}") for i in (0, 1)]
    for proc, _ in runs:
        assert proc.stdout.readline().strip() == "playing"
    time.sleep(1)
    c.kill_redis()
    time.sleep(1)
    restarted = time.time()
    c.start_redis()
    after = c.wait(lambda: (lambda o: o if len(o) == n else None)(c.owners()), 5,
                   "every stream re-claimed")
    reclaimed = time.time() - restarted
    members = c.wait(lambda: len(c.members()) == 2, 5, "both origins registered again")
    players = player_results(runs)
    print(f"\nRedis restarted empty: {n} streams re-claimed in {reclaimed:.2f} s, "
          f"players disconnected {sum(map(disconnected, players))}")
    assert after == before and members
    assert sum(map(disconnected, players)) == 0


# ---------------------------------------------------------------- 4. the CDN in miniature
def play_links(c, ip, streams):
    """{stream: {client ip: play links}} of the server at `ip` (its /api/v1/clients)."""
    ids = {s["id"]: s["name"] for s in c.streams(ip)}
    out = {}
    for cl in c.api(ip, "clients?count=10000")["clients"]:
        name = ids.get(cl["stream"])
        if not cl["publish"] and name in streams:
            per = out.setdefault(name, {})
            per[cl["ip"]] = per.get(cl["ip"], 0) + 1
    return out


def pulled_from(c, ip):
    """{stream: upstream address} of the edge at `ip` (its streams' `edge` info)."""
    return {s["name"]: (s["edge"] or {}).get("origin") for s in c.streams(ip) if s.get("edge")}


def check_one_link_per_hop(c, streams, leaves_of):
    """Per stream: exactly one link from its owner to each mid edge serving it, one from a mid
    edge to each leaf serving it; returns {mid ip: [streams it serves]}."""
    owners = c.owners()
    members = c.members()
    mids = {}
    for m in range(len(c.edges)):
        for name, upstream in pulled_from(c, edge_ip(m)).items():
            if name in streams:
                assert upstream == members[owners[name]], (name, upstream)
                mids.setdefault(edge_ip(m), []).append(name)
    for o in range(len(c.origins)):
        for name, per in play_links(c, origin_ip(o), streams).items():
            serving = sorted(ip for ip, names in mids.items() if name in names)
            assert sorted(per) == serving and set(per.values()) == {1}, (name, per, serving)
    to_leaves = [play_links(c, edge_ip(m), streams) for m in range(len(c.edges))]
    for per_stream in to_leaves:
        for name, per in per_stream.items():
            assert set(per.values()) == {1}, (name, per)
    for name in streams:
        links = sum(per_stream.get(name, {}).get(leaf_ip(j), 0)
                    for per_stream in to_leaves for j in leaves_of[name])
        assert links == len(leaves_of[name]), (name, links)
    return mids


def test_cdn_in_miniature_one_link_per_hop_and_leaves_move_off_a_dead_mid_edge(
        make_cluster, small_media):
    """Redis, 3 origins, 3 mid-tier edges with the directory, 6 leaf edges pulling from two mid
    edges each (static lists); 12 streams published and played on the leaves (2 leaves each)."""
    c = make_cluster(origins=3, edges=3, leaves=6)
    n = 12
    # encoders publish through the leaves whose first mid edge is e0 or e1 (a leaf pushes to
    # its first mid edge): killing e2 below tests the play path only
    c.pubgen([f"rtmp://{leaf_ip(j)}:1935/live/c{{i}}" for j in (0, 1, 3, 4)], n, small_media)
    c.wait(lambda: len(c.owners()) == n, 30, "every stream owned")
    streams = {f"c{i}" for i in range(n)}
    publishing = [(0, 1, 3, 4)[i % 4] for i in range(n)]      # pubgen's round robin
    # each stream played on two leaves other than the one it is published through (that one
    # serves it locally)
    leaves_of = {f"c{i}": ((publishing[i] + 1) % 6, (publishing[i] + 3) % 6) for i in range(n)}
    urls = [f"rtmp://{leaf_ip(j)}:1935/live/{name}" for name in sorted(streams)
            for j in leaves_of[name]]
    seconds = 14
    loadgen = c.lab.spawn("play", [sys.executable, "-m", "bench.loadgen", *urls, "-n",
                                   str(len(urls)), "--warmup", "2", "--duration", str(seconds),
                                   "--connect-timeout", "10"], stdout=subprocess.PIPE, text=True)

    def settled():
        try:
            return check_one_link_per_hop(c, streams, leaves_of)
        except AssertionError:
            return None                     # players still joining
    give_up = time.time() + 12
    c.wait(lambda: settled() or time.time() > give_up, 15, "links settled")
    mids = check_one_link_per_hop(c, streams, leaves_of)        # the assertion, with details
    victim = edge_ip(2)
    moved = [name for name in mids[victim]]
    killed = time.time()
    c.edges[[edge_ip(m) for m in range(3)].index(victim)].kill()

    def leaves_moved():
        for j in range(6):
            if any(up == f"{victim}:1935" for up in pulled_from(c, leaf_ip(j)).values()):
                return False
        return True
    c.wait(leaves_moved, 10, "every leaf moved off the dead mid edge")
    move_s = time.time() - killed
    c.edges = [e for e in c.edges if e.proc.poll() is None]
    survivors = [edge_ip(m) for m in range(3) if edge_ip(m) != victim]
    c.wait(lambda: all(name in sum((list(pulled_from(c, ip)) for ip in survivors), [])
                       for name in moved), 10, "the dead mid edge's streams on the others")
    out, _ = loadgen.communicate(timeout=seconds + 30)
    result = json.loads(out.strip().splitlines()[-1])["result"]
    print(f"\nCDN in miniature: 3 origins, 3 mid edges, 6 leaves, {n} streams, {len(urls)} leaf "
          f"players; mid edge {victim} killed with {len(moved)} streams: leaves moved in "
          f"{move_s:.2f} s, players connected {result['connected']}/{result['players']}, "
          f"disconnects {result['disconnects']}, longest gap {result['max_gap_ms']['max']} ms, "
          f"regressions {result['regressions']}")
    assert result["connected"] == len(urls) and result["disconnects"] == 0
    assert result["max_gap_ms"]["max"] < 2000
    assert result["regressions"] == 0


# ---------------------------------------------------------------- the encoders' generator
def test_pubgen_loops_the_file_after_its_latest_timestamp(small_media):
    """bench.pubgen restarted its loop after the file's last tag (an AVC end-of-sequence), not
    its latest timestamp (audio ends later): players saw audio go back once per loop."""
    from bench.pubgen import load_tags
    tags, duration = load_tags(str(small_media))
    assert duration > max(ts for t, ts, _ in tags if t != 18)
