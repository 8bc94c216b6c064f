"""The origin cluster's directory (issue 21) with a real redis-server and real server processes:
leases on publish, duplicates refused across origins, edges pulling from the owner and following
a move, placement of edge publishes, and a Redis outage that must not cut live streams."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from tests.conftest import free_port, wait_for, wait_port
from tests.redis_server import RedisServer
from tests.rtmpclient import RtmpTestClient, timestamp_regressions

KEY = "srsedge:stream:__defaultVhost__/live/{}"

ORIGIN = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen APIPORT; }
vhost __defaultVhost__ {
    cluster { directory REDIS; directory_ttl 3; }
}
"""

EDGE = """
listen {port};
srs_log_tank console;
vhost __defaultVhost__ {
    cluster { mode remote; directory REDIS; directory_ttl 3; origin_data_timeout 2; }
}
"""


def origin_conf(store, api_port=None):
    return ORIGIN.replace("REDIS", store.url).replace("APIPORT", str(api_port or free_port()))


@pytest.fixture
def store(tmp_path):
    r = RedisServer(tmp_path).start()
    yield r
    r.stop(kill=True)


def members(store):
    c = store.client()
    return {json.loads(v)["rtmp"].rpartition(":")[2]: json.loads(v)["id"]
            for v in c.mget([f"srsedge:origin:{i}" for i in c.smembers("srsedge:origins")]) if v}


def origin_id(store, server):
    return wait_for(lambda: members(store).get(str(server.port)), 10)


def publish_retrying(publisher_factory, url, media, redis, key, owner, timeout=20):
    """ffmpeg in a retry loop, as OBS reconnects: restart it until `owner` holds `key`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pub = publisher_factory(url, media)
        if wait_for(lambda: redis.get(key) == owner or not pub.alive(), 5):
            if redis.get(key) == owner:
                return pub
        pub.stop()
        time.sleep(0.5)                  # OBS waits a little between attempts
    return None


def publish_refused(url):
    c = RtmpTestClient(url, timeout=5)
    try:
        c.publish(timeout=5)
        return c.session.state != "publishing", c.statuses
    finally:
        c.close()


def test_publish_takes_a_lease_a_second_origin_refuses_it_and_unpublish_releases(
        store, server_factory, publisher_factory, media_file):
    a = server_factory(origin_conf(store), name="a")
    b = server_factory(origin_conf(store), name="b")
    a_id, b_id = origin_id(store, a), origin_id(store, b)
    assert a_id and b_id and a_id != b_id
    redis = store.client()
    pub = publisher_factory(a.url("live/s1"), media_file)
    assert wait_for(lambda: redis.get(KEY.format("s1")) == a_id, 10)
    refused, statuses = publish_refused(b.url("live/s1"))
    assert refused and "NetStream.Publish.BadName" in statuses
    assert redis.get(KEY.format("s1")) == a_id
    pub.stop()
    assert wait_for(lambda: redis.get(KEY.format("s1")) is None, 10)
    pub2 = publisher_factory(b.url("live/s1"), media_file)
    assert wait_for(lambda: redis.get(KEY.format("s1")) == b_id, 10)
    assert pub2.alive()


def test_api_shows_the_cluster_and_each_streams_owner(store, server_factory, publisher_factory,
                                                      media_file):
    api_port = free_port()
    a = server_factory(origin_conf(store, api_port),
                       name="a")
    a_id = origin_id(store, a)
    api = f"http://127.0.0.1:{api_port}/api/v1"
    publisher_factory(a.url("live/s9"), media_file)
    assert wait_for(lambda: store.client().get(KEY.format("s9")) == a_id, 10)
    data = requests.get(f"{api}/clusters", timeout=5).json()["data"]["directories"][0]
    assert data["reachable"] and data["self"] == a_id and data["role"] == "origin"
    assert [(o["id"], o["streams_owned"]) for o in data["origins"]] == [(a_id, 1)]
    assert data["origins"][0]["rtmp"].endswith(f":{a.port}")
    assert data["origins"][0]["owned"] == ["__defaultVhost__/live/s9"]
    answer = requests.get(f"{api}/clusters?app=live&stream=s9", timeout=5).json()
    assert answer["code"] == 0 and answer["data"]["origin"]["id"] == a_id
    assert answer["data"]["origin"]["port"] == a.port
    assert requests.get(f"{api}/clusters?app=live&stream=nope", timeout=5).json()["code"] == 2048
    streams = requests.get(f"{api}/streams", timeout=5).json()["streams"]
    assert [s["owner"] for s in streams if s["name"] == "s9"] == [a_id]


def test_stopped_origin_deregisters(store, server_factory):
    a = server_factory(origin_conf(store), name="a")
    assert origin_id(store, a)
    a.stop(signal.SIGTERM)
    assert wait_for(lambda: str(a.port) not in members(store), 5)


def test_edge_without_origin_list_pulls_from_the_owner_and_follows_a_move(
        store, server_factory, publisher_factory, media_file):
    a = server_factory(origin_conf(store), name="a")
    b = server_factory(origin_conf(store), name="b")
    edge = server_factory(EDGE.replace("REDIS", store.url), name="edge")
    a_id, b_id = origin_id(store, a), origin_id(store, b)
    redis = store.client()
    publisher_factory(a.url("live/s2"), media_file)
    assert wait_for(lambda: redis.get(KEY.format("s2")) == a_id, 10)
    player = RtmpTestClient(edge.url("live/s2"), timeout=5)
    try:
        assert player.play()
        assert player.pump_until(lambda: len(player.media) > 50, 15)
        a.stop(signal.SIGKILL)                      # the owner dies; its lease expires (3 s)
        killed = time.time()
        # the encoder reconnects elsewhere (refused until A's lease expired)
        assert publish_retrying(publisher_factory, b.url("live/s2"), media_file, redis,
                                KEY.format("s2"), b_id)
        before = len(player.media)
        assert player.pump_until(lambda: len(player.media) > before + 50, 20), player.statuses
        assert not player.closed
        assert timestamp_regressions(player.media) == 0
        resumed = player.arrivals[before]
        assert resumed - killed < 2 * 3 + 5         # 2 x lease TTL + the encoder's restart
    finally:
        player.close()


def test_edge_publishes_are_placed_on_the_least_loaded_origin(
        store, server_factory, publisher_factory, media_file):
    origins = [server_factory(origin_conf(store), name=f"o{i}") for i in range(3)]
    ids = [origin_id(store, o) for o in origins]
    edge = server_factory(EDGE.replace("REDIS", store.url), name="edge")
    redis = store.client()
    for i in range(6):
        publisher_factory(edge.url(f"live/p{i}"), media_file)
    owners = wait_for(lambda: (lambda v: v if all(v) else None)(
        redis.mget([KEY.format(f"p{i}") for i in range(6)])), 20)
    assert owners, "not every stream got an owner"
    assert sorted(owners.count(i) for i in ids) == [2, 2, 2]


def test_redis_outage_keeps_live_streams_refuses_new_ones_and_reclaims_after_restart(
        store, server_factory, publisher_factory, media_file):
    a = server_factory(origin_conf(store), name="a")
    a_id = origin_id(store, a)
    publisher_factory(a.url("live/s3"), media_file)
    assert wait_for(lambda: store.client().get(KEY.format("s3")) == a_id, 10)
    store.stop(kill=True)
    player = RtmpTestClient(a.url("live/s3"), timeout=5)
    try:
        assert player.play()
        assert player.pump_until(lambda: len(player.media) > 100, 15)   # live goes on
        refused, _ = publish_refused(a.url("live/new"))
        assert refused                                  # uniqueness for what is new
        store.start()                                   # empty: no lease, no member
        wait_port(store.port)
        assert wait_for(lambda: store.client().get(KEY.format("s3")) == a_id, 5)
        assert origin_id(store, a) == a_id
        before = len(player.media)
        assert player.pump_until(lambda: len(player.media) > before + 25, 10)
    finally:
        player.close()


def test_any_origin_serves_a_stream_owned_by_another_and_takes_it_over_on_republish(
        store, server_factory, publisher_factory, media_file):
    """A player at a non-owner origin is served through one pull from the owner; when the owner
    dies and the encoder comes back on this origin, its publish takes over with players kept."""
    a = server_factory(origin_conf(store), name="a")
    b = server_factory(origin_conf(store), name="b")
    a_id, b_id = origin_id(store, a), origin_id(store, b)
    redis = store.client()
    publisher_factory(a.url("live/s4"), media_file)
    assert wait_for(lambda: redis.get(KEY.format("s4")) == a_id, 10)
    players = [RtmpTestClient(b.url("live/s4"), timeout=5) for _ in range(2)]
    try:
        for p in players:
            assert p.play()
        for p in players:
            assert p.pump_until(lambda: len(p.media) > 50, 15), p.statuses
        a.stop(signal.SIGKILL)
        killed = time.time()
        assert publish_retrying(publisher_factory, b.url("live/s4"), media_file, redis,
                                KEY.format("s4"), b_id)
        for p in players:
            before = len(p.media)
            assert p.pump_until(lambda: len(p.media) > before + 50, 20), p.statuses
            assert not p.closed and timestamp_regressions(p.media) == 0
        assert players[0].arrivals[-1] - killed < 20
    finally:
        for p in players:
            p.close()


HLS_ORIGIN = """
listen {port};
srs_log_tank console;
http_server { enabled on; listen HTTPPORT; dir {dir}/html; }
vhost __defaultVhost__ {
    cluster { directory REDIS; directory_ttl 3; }
    hls { enabled on; hls_path {dir}/html; hls_fragment 1; hls_window 6; }
}
"""


def test_any_origin_serves_hls_from_the_owner_and_a_relay_cuts_none(
        store, server_factory, publisher_factory, media_file, tmp_path):
    ports = [free_port(), free_port()]
    a, b = (server_factory(HLS_ORIGIN.replace("REDIS", store.url).replace("HTTPPORT", str(p)),
                           name=n) for n, p in zip("ab", ports))
    a_id = origin_id(store, a)
    origin_id(store, b)
    publisher_factory(a.url("live/h1"), media_file)
    playlist = "/live/h1.m3u8"
    at_a = wait_for(lambda: (lambda r: r if r.status_code == 200 and ".ts" in r.text else None)(
        requests.get(f"http://127.0.0.1:{ports[0]}{playlist}", timeout=5)), 20)
    assert at_a, "the owner wrote no playlist"
    at_b = requests.get(f"http://127.0.0.1:{ports[1]}{playlist}", timeout=5)
    assert at_b.status_code == 200 and "#EXTM3U" in at_b.text
    segment = [line for line in at_b.text.splitlines() if line.endswith(".ts")][0]
    base = playlist.rsplit("/", 1)[0]
    seg_a = requests.get(f"http://127.0.0.1:{ports[0]}{base}/{segment}", timeout=5)
    seg_b = requests.get(f"http://127.0.0.1:{ports[1]}{base}/{segment}", timeout=5)
    assert seg_b.status_code == 200 and seg_b.content == seg_a.content and seg_b.content[0] == 0x47
    player = RtmpTestClient(b.url("live/h1"), timeout=5)     # B relays the stream from A ...
    try:
        assert player.play() and player.pump_until(lambda: len(player.media) > 100, 15)
        assert not list((b.dir / "html").rglob("h1*"))          # ... and cuts no HLS of it
    finally:
        player.close()
    assert store.client().get(KEY.format("h1")) == a_id
    missing = requests.get(f"http://127.0.0.1:{ports[1]}/live/none.m3u8",
                           timeout=5)
    assert missing.status_code == 404                        # nobody owns it: not proxied


def media_sequence(text):
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            return int(line.split(":")[1])
    return None


def test_hls_continues_on_the_new_owner_after_a_rehome(
        store, server_factory, publisher_factory, media_file):
    """A poller asking origin B (as the nginx tier would) sees A's playlist through B, then after
    A dies and the encoder comes back on B, B's own playlist continues the media sequence with a
    discontinuity: never a sequence going back."""
    ports = [free_port(), free_port()]
    a, b = (server_factory(HLS_ORIGIN.replace("REDIS", store.url).replace("HTTPPORT", str(p)),
                           name=n) for n, p in zip("ab", ports))
    a_id, b_id = origin_id(store, a), origin_id(store, b)
    redis = store.client()
    publisher_factory(a.url("live/h2"), media_file)
    url = f"http://127.0.0.1:{ports[1]}/live/h2.m3u8"

    def sequence_at_b():
        r = requests.get(url, timeout=5)
        return media_sequence(r.text) if r.status_code == 200 else None
    seen = [wait_for(lambda: (lambda s: s if s and s >= 3 else None)(sequence_at_b()), 30)]
    assert seen[0], "no playlist through B"
    assert wait_for(lambda: redis.get("srsedge:hls:__defaultVhost__/live/h2"), 10)
    last_at_a = sequence_at_b()
    a.stop(signal.SIGKILL)
    assert publish_retrying(publisher_factory, b.url("live/h2"), media_file, redis,
                            KEY.format("h2"), b_id)
    text = wait_for(lambda: (lambda r: r.text if r.status_code == 200 and ".ts" in r.text
                             else None)(requests.get(url, timeout=5)), 20)
    assert text, "the new owner wrote no playlist"
    assert media_sequence(text) > last_at_a
    assert "#EXT-X-DISCONTINUITY" in text


PLAIN_ORIGIN = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen APIPORT; }
vhost __defaultVhost__ { }
"""


def srs_heartbeat(server_id, rtmp_port, api_port):
    """The body SRS 7 posts (srs_app_heartbeat.cpp, `ports on`), with its endpoint strings."""
    return {"device_id": "my-srs-device", "ip": "127.0.0.1", "server": server_id,
            "service": "e4a5b7c9", "pid": "4242", "rtmp": [str(rtmp_port)],
            "api": [f"0.0.0.0:{api_port}"]}


def test_srs_heartbeat_registers_an_origin_whose_streams_edges_find(
        store, server_factory, publisher_factory, media_file):
    """An SRS-compatible origin that knows nothing of the directory (an srsedge without one,
    speaking SRS's API) joins by SRS's heartbeat body; its live stream is claimed for it and an
    edge with the directory pulls the stream from it."""
    api_a, api_srs = free_port(), free_port()
    a = server_factory(origin_conf(store, api_a), name="a")
    srs = server_factory(PLAIN_ORIGIN.replace("APIPORT", str(api_srs)), name="srs")
    edge = server_factory(EDGE.replace("REDIS", store.url), name="edge")
    origin_id(store, a)
    publisher_factory(srs.url("live/srs1"), media_file)
    assert wait_for(lambda: any(s["publish"]["active"] for s in requests.get(
        f"http://127.0.0.1:{api_srs}/api/v1/streams", timeout=5).json()["streams"]), 10)
    register = f"http://127.0.0.1:{api_a}/api/v1/srs/register"
    answer = requests.post(register, json=srs_heartbeat("vid-srs1", srs.port, api_srs), timeout=5)
    assert answer.status_code == 200 and answer.json() == {"code": 0, "id": "srs-vid-srs1"}
    assert members(store).get(str(srs.port)) == "srs-vid-srs1"
    assert wait_for(lambda: store.client().get(KEY.format("srs1")) == "srs-vid-srs1", 5)
    player = RtmpTestClient(edge.url("live/srs1"), timeout=5)
    try:
        assert player.play() and player.pump_until(lambda: len(player.media) > 50, 15)
    finally:
        player.close()
    bad = requests.post(register, json={"ip": "127.0.0.1", "server": "x"}, timeout=5)
    assert bad.status_code == 400
    assert requests.get(register, timeout=5).status_code == 405


SRS_ORIGIN = """
listen {port};
daemon off;
srs_log_tank console;
pid {dir}/srs.pid;
http_api { enabled on; listen APIPORT; }
heartbeat { enabled on; interval 1; url http://127.0.0.1:REGPORT/api/v1/srs/register; ports on; }
vhost __defaultVhost__ { }
"""


def test_real_srs_joins_by_heartbeat_and_edges_pull_from_it(
        store, server_factory, publisher_factory, media_file, tmp_path):
    """SRS 7 (SRS_BIN, built with ../shared/tools/build-srs.sh; skipped without it) with its own
    heartbeat config registers, its stream is found by a directory edge and played."""
    srs_bin = os.environ.get("SRS_BIN", "/tmp/srs-build/objs/srs")
    if not os.access(srs_bin, os.X_OK):
        pytest.skip("SRS_BIN not built (../shared/tools/build-srs.sh)")
    api_a, api_srs, rtmp_srs = free_port(), free_port(), free_port()
    a = server_factory(origin_conf(store, api_a), name="a")
    edge = server_factory(EDGE.replace("REDIS", store.url), name="edge")
    a_id = origin_id(store, a)
    conf = tmp_path / "srs.conf"
    conf.write_text(SRS_ORIGIN.replace("{port}", str(rtmp_srs)).replace("{dir}", str(tmp_path))
                    .replace("APIPORT", str(api_srs)).replace("REGPORT", str(api_a)))
    log = open(tmp_path / "srs.log", "wb")
    srs = subprocess.Popen([srs_bin, "-c", str(conf)], cwd=os.path.dirname(os.path.dirname(
        srs_bin)), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(rtmp_srs, proc=srs)
        member = wait_for(lambda: next((m for m in members(store).values()
                                        if m.startswith("srs-")), None), 15)
        assert member, "SRS did not register by its heartbeat"
        publisher_factory(f"rtmp://127.0.0.1:{rtmp_srs}/live/real", media_file)
        assert wait_for(lambda: store.client().get(KEY.format("real")) == member, 15)
        player = RtmpTestClient(edge.url("live/real"), timeout=5)
        try:
            assert player.play() and player.pump_until(lambda: len(player.media) > 50, 15)
        finally:
            player.close()
        # placement counts SRS's streams as its load: of two publishes through the edge, the
        # first goes to the idle srsedge origin, the second to SRS (both have one stream then)
        publisher_factory(edge.url("live/placed0"), media_file)
        assert wait_for(lambda: store.client().get(KEY.format("placed0")) == a_id, 10)
        publisher_factory(edge.url("live/placed1"), media_file)
        srs_streams = f"http://127.0.0.1:{api_srs}/api/v1/streams"
        assert wait_for(lambda: {s["name"] for s in requests.get(srs_streams, timeout=5).json()[
            "streams"] if s["publish"]["active"]} == {"real", "placed1"}, 15)
        assert wait_for(lambda: store.client().get(KEY.format("placed1")) == member, 15)
    finally:
        srs.kill()
        srs.wait()
        log.close()


def test_a_directory_edge_player_waits_for_the_stream_to_get_an_owner(
        store, server_factory, publisher_factory, media_file):
    """A player on a directory edge before anyone publishes waits (play.publisher_wait) and
    plays once the stream gets an owner (the moves channel wakes it), as SRS's edge waits."""
    a = server_factory(origin_conf(store), name="a")
    edge = server_factory(EDGE.replace("REDIS", store.url), name="edge")
    a_id = origin_id(store, a)
    player = RtmpTestClient(edge.url("live/soon"), timeout=5)
    try:
        player.session.play(player.stream)
        player.sock.sendall(player.session.data_to_send())
        player.read_for(2.0)
        assert not player.closed and not player.media
        publisher_factory(a.url("live/soon"), media_file)
        assert wait_for(lambda: store.client().get(KEY.format("soon")) == a_id, 10)
        assert player.pump_until(lambda: len(player.media) > 50, 20), player.statuses
    finally:
        player.close()


def test_an_edge_sends_a_reconnecting_encoder_to_a_survivor_after_the_owner_died(
        store, server_factory, publisher_factory, media_file):
    """The edge read the owner (a player), the owner dies: its lease expires without a message,
    and the encoder retrying through the edge must reach the surviving origin (the edge used to
    keep the dead owner cached for ever)."""
    a = server_factory(origin_conf(store), name="a")
    b = server_factory(origin_conf(store), name="b")
    edge = server_factory(EDGE.replace("REDIS", store.url), name="edge")
    ids = {origin_id(store, a): a, origin_id(store, b): b}
    redis = store.client()
    pub = publisher_factory(edge.url("live/s5"), media_file)
    owner = wait_for(lambda: redis.get(KEY.format("s5")), 10)
    assert owner in ids
    survivor_id = next(i for i in ids if i != owner)
    player = RtmpTestClient(edge.url("live/s5"), timeout=5)
    try:
        assert player.play() and player.pump_until(lambda: len(player.media) > 25, 15)
    finally:
        player.close()
    ids[owner].stop(signal.SIGKILL)
    pub.stop()
    assert publish_retrying(publisher_factory, edge.url("live/s5"), media_file, redis,
                            KEY.format("s5"), survivor_id, timeout=15)


def test_players_arriving_together_at_a_directory_edge_share_one_pull_link(
        store, server_factory, publisher_factory, media_file):
    """The edge's directory lookup yields: a second player arriving meanwhile must join the
    link the first one starts, not open another (one upstream link per stream)."""
    api_port = free_port()
    a = server_factory(origin_conf(store, api_port), name="a")
    a_id = origin_id(store, a)
    edge = server_factory(EDGE.replace("REDIS", store.url), name="edge")
    publisher_factory(a.url("live/s6"), media_file)
    assert wait_for(lambda: store.client().get(KEY.format("s6")) == a_id, 10)
    players = [RtmpTestClient(edge.url("live/s6"), timeout=5) for _ in range(4)]
    busy = threading.Thread(target=store.client().eval, args=(BUSY_LUA, 0, 300))
    try:
        busy.start()                        # Redis answers nothing for 0.3 s: the edge's
        time.sleep(0.05)                    # lookup for the first player yields meanwhile
        plays = [threading.Thread(target=p.play) for p in players]
        for t in plays:
            t.start()
        for t in plays:
            t.join(15)
        for p in players:
            assert p.pump_until(lambda: len(p.media) > 25, 15), p.statuses

        def links():
            clients = requests.get(f"http://127.0.0.1:{api_port}/api/v1/clients?count=100",
                                   timeout=5).json()["clients"]
            return [c for c in clients if not c["publish"] and c["name"] == "s6"]
        assert len(links()) == 1, links()
    finally:
        busy.join(5)
        for p in players:
            p.close()


BUSY_LUA = """local t = redis.call('TIME'); local stop = t[1] * 1000 + t[2] / 1000 + ARGV[1]
repeat t = redis.call('TIME') until t[1] * 1000 + t[2] / 1000 >= stop"""


def record_publishers(store):
    """{origin rtmp port: publishers in its membership record}."""
    c = store.client()
    out = {}
    for v in c.mget([f"srsedge:origin:{i}" for i in c.smembers("srsedge:origins")]):
        if v:
            rec = json.loads(v)
            out[rec["rtmp"].rpartition(":")[2]] = rec["load"]["publishers"]
    return out


def test_placement_stays_even_when_the_origins_records_are_renewed_at_different_times(
        store, server_factory):
    """An origin whose record is not renewed yet must not look empty: the edge keeps counting
    what it placed there until that origin's record shows it (it forgot it at every members
    read, and a burst went to the origin renewed last: 6/3/3 here)."""
    conf = ORIGIN.replace("directory_ttl 3", "directory_ttl 15")   # records renewed every 5 s
    b, c = (server_factory(conf.replace("REDIS", store.url).replace("APIPORT", str(free_port())),
                           name=n) for n in "bc")
    origin_id(store, b), origin_id(store, c)
    time.sleep(2.5)                                   # a's renewals come 2.5 s after b's and c's
    a = server_factory(conf.replace("REDIS", store.url).replace("APIPORT", str(free_port())),
                       name="a")
    origin_id(store, a)
    edge = server_factory(EDGE.replace("REDIS", store.url), name="edge")
    clients = []

    def publish(names):
        for name in names:
            client = RtmpTestClient(edge.url(f"live/{name}"), timeout=5)
            clients.append(client)
            assert client.publish(5) and client.session.state == "publishing", client.statuses
    try:
        publish([f"q{i}" for i in range(6)])
        ports = {str(s.port) for s in (b, c)}
        # b and c renewed (their records show their 2 publishers each), a not yet
        assert wait_for(lambda: all(record_publishers(store).get(p) == 2 for p in ports), 8)
        assert record_publishers(store)[str(a.port)] == 0
        publish([f"q{i}" for i in range(6, 12)])
        owners = store.client().mget([KEY.format(f"q{i}") for i in range(12)])
        ids = {origin_id(store, s) for s in (a, b, c)}
        assert sorted(owners.count(i) for i in ids) == [4, 4, 4], owners
    finally:
        for client in clients:
            client.close()


def test_a_burst_of_lookups_waits_for_a_connection_instead_of_failing(store):
    """150 lookups at once (a burst of publishes through an edge) while Redis is busy: each
    waits for a pooled connection; none fails (redis-py's default pool refused the 101st:
    "Too many connections", and the publish was refused)."""
    from lib.server.cluster.store import RedisDirectory, StoreError
    directory = RedisDirectory(store.url)
    failures = []

    def lookup():
        try:
            directory.owner("__defaultVhost__/live/none")
        except StoreError as e:
            failures.append(str(e))
    busy = threading.Thread(target=store.client().eval, args=(BUSY_LUA, 0, 300))
    busy.start()
    time.sleep(0.05)
    threads = [threading.Thread(target=lookup) for _ in range(150)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    busy.join(5)
    directory.close()
    assert not failures, failures[:3]
