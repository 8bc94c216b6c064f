"""Black-box edge cluster tests: real origin and edge processes, real ffmpeg."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from lib.media import flv
from tests.conftest import ORIGIN_CONF, PYTHON, ROOT, Player, free_port, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient, longest_pause, read_all, timestamp_regressions
from tests.test_origin import HookRecorder, hook_server  # noqa: F401  (fixture)
from tests.test_api import ApiProc


def edge_conf(*origins, extra="", cluster_extra=""):
    return f"""
listen {{port}};
srs_log_tank console;
vhost __defaultVhost__ {{
    cluster {{
        mode remote;
        origin {' '.join(f'127.0.0.1:{o.port}' for o in origins)};
        edge_idle_timeout 2;
        {cluster_extra}
    }}
    {extra}
}}
"""


def plays_on(server, stream="livestream"):
    """Play requests the server logged for a stream (counted on that server)."""
    return server.log_text().count(f"play __defaultVhost__/live/{stream} to")


def media_gap_ms(media):
    """The biggest forward step between consecutive video timestamps a player saw (arrival
    pauses are measured separately with longest_pause)."""
    ts = [t for kind, t, _ in media if kind == 9]
    return max((b - a for a, b in zip(ts, ts[1:])), default=0)


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def test_seed_configs_20_players_one_upstream(tmp_path, media_file, publisher_factory):
    """SRS's edge document, verbatim configs: origin.conf + edge.conf from the repo."""
    if not (port_free(19350) and port_free(1935)):
        pytest.skip("ports 19350/1935 of the seed configs are busy on this machine")
    procs = []
    try:
        for name in ("origin", "edge"):
            shutil.copy(os.path.join(ROOT, "conf", f"{name}.conf"), tmp_path)
            procs.append(subprocess.Popen([PYTHON, os.path.join(ROOT, "srsedge.py"), "-c",
                                           f"{name}.conf"], cwd=tmp_path))
        wait_port(19350)
        wait_port(1935)
        publisher_factory("rtmp://127.0.0.1:19350/live/livestream", media_file)
        time.sleep(1.5)
        players = [Player("rtmp://127.0.0.1/live/livestream", 4) for _ in range(20)]
        for p in players:
            p.wait(90)
        for p in players:
            assert p.has_video and p.has_audio and p.frames >= 80, (p.frames, p.stderr[-1500:])
        origin_log = (tmp_path / "objs" / "origin.log").read_text()
        assert origin_log.count("play __defaultVhost__/live/livestream to") == 1
        assert "edge upnode connected" in origin_log        # debug_srs_upnode default on
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(10)
    assert not (tmp_path / "objs" / "edge.pid").exists()


def test_grace_period_reuse_and_stop(server_factory, media_file, publisher_factory, tmp_path):
    """Oracles: the edge's API (the stream's upstream links; the stream gone once the grace
    period ended), not log lines."""
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge = ApiProc(tmp_path, "edge", conf="http_api { enabled on; listen {api}; }\n"
                   + edge_conf(origin, cluster_extra="edge_idle_timeout 3;").replace(
                       "edge_idle_timeout 2;", ""))
    edge.start()
    try:
        publisher_factory(origin.url(), media_file)
        c = RtmpTestClient(edge.url())
        assert c.play()
        assert c.pump_until(lambda: len(c.media) > 30, 20)
        c.close()
        assert wait_for(lambda: edge.stream()["edge"]["players"] == 0)
        c2 = RtmpTestClient(edge.url())     # inside the 3 s grace period: re-play reuses the link
        assert c2.play()
        assert c2.pump_until(lambda: len(c2.media) > 30, 20)
        assert edge.stream()["edge"]["links_opened"] == 1
        c2.close()
        # after the grace period the edge closes its link and forgets the stream
        assert wait_for(lambda: edge.stream() is None, 20)
        c3 = RtmpTestClient(edge.url())
        assert c3.play()
        assert c3.pump_until(lambda: len(c3.media) > 10, 20)
        assert edge.stream()["edge"]["links_opened"] == 1      # a new stream, a new link
    finally:
        edge.stop()


def read_until(clients, predicate, timeout=30.0):
    """Read every client at once (read_all) until `predicate()` holds or the deadline passes."""
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        read_all(clients, 0.5)
    return predicate()


def test_failover_sigkill_origin_players_stay(server_factory, media_file, publisher_factory,
                                              tmp_path):
    """Oracles: media the players get and the edge's API (origin in use, failovers, the gap
    players saw), not log lines or fixed reading times."""
    a = server_factory(ORIGIN_CONF, name="a")
    b = server_factory(ORIGIN_CONF, name="b")
    edge = ApiProc(tmp_path, "edge", conf="http_api { enabled on; listen {api}; }\n"
                   + edge_conf(a, b))
    edge.start()
    try:
        publisher_factory(a.url(), media_file)
        publisher_factory(b.url(), media_file)
        viewers = [RtmpTestClient(edge.url()) for _ in range(4)]
        for v in viewers:
            assert v.play()
        ff = Player(edge.url(), 9)
        assert read_until(viewers, lambda: all(len(v.media) > 20 for v in viewers))
        link = edge.stream()["edge"]
        assert link["origin"] == f"127.0.0.1:{a.port}" and link["failovers"] == 0, link
        a.proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        at_kill = [len(v.media) for v in viewers]

        def switched():
            link = edge.stream()["edge"]
            return (link["origin"] == f"127.0.0.1:{b.port}" and link["failovers"] == 1
                    and all(len(v.media) > n + 10 for v, n in zip(viewers, at_kill)))

        assert read_until(viewers, switched), edge.stream()["edge"]
        for v in viewers:
            assert not v.closed
            assert timestamp_regressions(v.media) == 0
            step = media_gap_ms(v.media)
            pause = longest_pause(v, killed_at - 0.2)
            print(f"failover: player paused {pause * 1000:.0f} ms, "
                  f"max video timestamp step {step} ms")
            assert pause < 3.0 and step < 1000
        ff.wait(60)
        assert ff.frames >= 150, ff.stderr[-1500:]
        gap = edge.stream()["edge"]["last_gap_ms"]
        print(f"failover: edge measured a media gap of {gap} ms")
        assert gap is not None and gap < 3000
    finally:
        edge.stop()


def test_stream_not_found_bounded(server_factory):
    """A player waits for a stream nobody publishes for play.publisher_wait (the edge asks its
    origins again every 3 s, as SRS), then gets StreamNotFound."""
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge = server_factory(edge_conf(origin, extra="play { publisher_wait 4; }",
                                    cluster_extra="origin_data_timeout 2;"), name="edge")
    c = RtmpTestClient(edge.url("live/nobody"))
    t0 = time.time()
    c.play()
    assert c.pump_until(lambda: c.closed, 15)
    assert "NetStream.Play.StreamNotFound" in c.statuses
    assert 4 <= time.time() - t0 < 15
    assert wait_for(lambda: "closed the connection" in origin.log_text(), 15)


def test_players_that_arrive_before_the_publisher_all_play(server_factory, publisher_factory,
                                                          media_file):
    """SRS's origin.conf + edge.conf: players on the edge (RTMP, HTTP-FLV) and on the origin
    (RTMP, HTTP-FLV) started 8 s before the publisher all play (SRS 7.0.18 did; srsedge refused
    the edge's at once and answered 404 to HTTP-FLV before)."""
    http = {"origin": free_port(), "edge": free_port()}
    flv = "http_server {{ enabled on; listen {}; dir {{dir}}; }}"
    remux = "http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }"
    origin = server_factory(ORIGIN_CONF.replace("vhost __defaultVhost__ { }",
                                                f"vhost __defaultVhost__ {{ {remux} }}")
                            + flv.format(http["origin"]), name="origin")
    edge = server_factory(edge_conf(origin, extra=remux) + flv.format(http["edge"]), name="edge")
    rtmp = [RtmpTestClient(server.url("live/later")) for server in (edge, origin)]
    for c in rtmp:
        c.session.play(c.stream)
        c.sock.sendall(c.session.data_to_send())
    flv_players = [Player(f"http://127.0.0.1:{port}/live/later.flv", 4) for port in http.values()]
    t0 = time.time()
    for c in rtmp:
        c.read_for(0.2)
    time.sleep(max(0.0, 8 - (time.time() - t0)))      # the players wait 8 s, as in the report
    assert not any(c.closed for c in rtmp) and all(p.proc.poll() is None for p in flv_players)
    publisher_factory(origin.url("live/later"), media_file)
    for c in rtmp:
        assert c.pump_until(lambda: len(c.media) > 50, 20), c.statuses
    for p in flv_players:
        p.wait(60)
        assert p.frames > 50 and p.has_video and p.has_audio, p.stderr[-800:]


def test_publish_through_edge_and_origin_failover(server_factory, media_file, publisher_factory):
    a = server_factory(ORIGIN_CONF, name="a")
    b = server_factory(ORIGIN_CONF, name="b")
    edge = server_factory(edge_conf(a, b), name="edge")
    pub = publisher_factory(edge.url("live/pushed"), media_file)
    on_a = RtmpTestClient(a.url("live/pushed"))
    assert on_a.play()
    assert on_a.pump_until(lambda: any(t == 9 for t, _, _ in on_a.media), 8)
    a.proc.send_signal(signal.SIGKILL)
    time.sleep(2)
    on_b = RtmpTestClient(b.url("live/pushed"))
    assert on_b.play()
    assert on_b.pump_until(lambda: sum(1 for t, _, _ in on_b.media if t == 9) > 30, 8)
    frames = [p for t, _, p in on_b.media if t == 9 and not flv.is_video_sequence_header(p)]
    assert flv.is_video_keyframe(frames[0])
    assert pub.alive(), "the encoder was not disconnected"


def test_publish_edge_refused_when_no_origin(server_factory, media_file, publisher_factory):
    dead = server_factory(ORIGIN_CONF, name="dead", start=False)
    edge = server_factory(edge_conf(dead), name="edge")
    c = RtmpTestClient(edge.url("live/x"))
    c.publish()
    assert c.session.state == "closed" or c.pump_until(lambda: c.closed, 15)
    assert wait_for(lambda: "no origin accepted" in edge.log_text(), 15)


def test_debug_srs_upnode_off(server_factory, media_file, publisher_factory):
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge = server_factory(edge_conf(origin, cluster_extra="debug_srs_upnode off;"), name="edge")
    publisher_factory(origin.url(), media_file)
    time.sleep(1)
    c = RtmpTestClient(edge.url())
    assert c.play() and c.pump_until(lambda: len(c.media) > 5, 15)
    assert plays_on(origin) == 1
    assert "edge upnode connected" not in origin.log_text()


def test_multi_layer_edges(server_factory, media_file, publisher_factory):
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge_a = server_factory(edge_conf(origin), name="edge_a")
    edge_b = server_factory(edge_conf(edge_a), name="edge_b")
    publisher_factory(origin.url(), media_file)
    time.sleep(1)
    viewers = [RtmpTestClient(edge_b.url()) for _ in range(3)]
    for v in viewers:
        assert v.play()
    for v in viewers:
        assert v.pump_until(lambda v=v: sum(1 for t, _, _ in v.media if t == 9) > 20, 20)
    assert plays_on(origin) == 1 and plays_on(edge_a) == 1 and plays_on(edge_b) == 3


def test_token_traverse(server_factory, media_file, publisher_factory, hook_server):  # noqa: F811
    origin_conf = ORIGIN_CONF.replace("vhost __defaultVhost__ { }", f"""
vhost __defaultVhost__ {{
    http_hooks {{ enabled on; on_play {hook_server}; on_publish {hook_server}; }}
}}""")
    origin = server_factory(origin_conf, name="origin")
    edge = server_factory(edge_conf(origin, cluster_extra="token_traverse on;"), name="edge")
    publisher_factory(origin.url("live/livestream?token=good"), media_file)
    time.sleep(1.5)
    good = RtmpTestClient(edge.url("live/livestream?token=good"))
    assert good.play()
    assert good.pump_until(lambda: len(good.media) > 10, 15)
    bad = RtmpTestClient(edge.url("live/livestream?token=bad"))
    bad.play()
    assert bad.pump_until(lambda: bad.closed, 8)
    assert not any(t == 9 for t, _, _ in bad.media)
    assert wait_for(lambda: "token_traverse" in edge.log_text(), 15)
    params = [c.get("param") for c in HookRecorder.calls if c["action"] == "on_play"]
    assert "?token=bad" in params and "?token=good" in params


def test_vhost_transform_up_down(server_factory, media_file, publisher_factory):
    """SRS's edge document: publish through the edge on up.srs.com, play on down.srs.com."""
    origin = server_factory("listen {port};\nsrs_log_tank console;\n"
                            "vhost down.srs.com { }\n", name="origin")
    edge = server_factory(f"""
listen {{port}};
srs_log_tank console;
vhost up.srs.com {{
    cluster {{
        mode remote;
        origin 127.0.0.1:{origin.port};
        vhost down.srs.com;
    }}
}}
""", name="edge")
    pub = publisher_factory(edge.url("live?vhost=up.srs.com/livestream"), media_file)
    viewer = RtmpTestClient(origin.url("live?vhost=down.srs.com/livestream"))
    assert viewer.play()
    assert viewer.pump_until(lambda: sum(1 for t, _, _ in viewer.media if t == 9) > 10, 10), \
        edge.log_text()[-2000:]
    assert pub.alive()
    assert wait_for(lambda: "publish down.srs.com/live/livestream" in origin.log_text(), 15)


def forwarding_origin_conf(dest):
    return ORIGIN_CONF.replace("vhost __defaultVhost__ { }", f"""
vhost __defaultVhost__ {{
    forward {{ enabled on; destination 127.0.0.1:{dest.port}; }}
}}""")


def test_forward_backup_origin_then_failover(server_factory, media_file, publisher_factory):
    """The encoder publishes to B, which forwards to A; the edge prefers A and fails over to B
    (which still has the encoder) when A dies."""
    a = server_factory(ORIGIN_CONF, name="a")
    b = server_factory(forwarding_origin_conf(a), name="b")
    edge = server_factory(edge_conf(a, b), name="edge")
    publisher_factory(b.url(), media_file)
    assert wait_for(lambda: "publish __defaultVhost__/live/livestream" in a.log_text(), 30)
    viewers = [RtmpTestClient(edge.url()) for _ in range(3)]
    for v in viewers:
        assert v.play()
    assert read_until(viewers, lambda: all(len(v.media) > 20 for v in viewers))
    a.proc.send_signal(signal.SIGKILL)
    killed = time.time()
    assert read_until(viewers, lambda: all(any(t > killed + 1 for t in v.arrivals)
                                           for v in viewers))
    for v in viewers:
        assert not v.closed and timestamp_regressions(v.media) == 0
        assert longest_pause(v, killed - 0.2) < 3.0
        assert any(t > killed + 1 for t in v.arrivals)


def test_edge_publish_and_play_other_stream_and_second_publisher(server_factory, media_file,
                                                                  publisher_factory):
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge = server_factory(edge_conf(origin), name="edge")
    publisher_factory(origin.url("live/fromorigin"), media_file)
    first = publisher_factory(edge.url("live/viaedge"), media_file)
    time.sleep(1.5)
    viewer = RtmpTestClient(edge.url("live/fromorigin"))
    assert viewer.play()
    on_origin = RtmpTestClient(origin.url("live/viaedge"))
    assert on_origin.play()
    assert read_until([viewer, on_origin], lambda: all(
        sum(1 for t, _, _ in c.media if t == 9) > 20 for c in (viewer, on_origin)))
    second = RtmpTestClient(edge.url("live/viaedge"))
    second.publish()
    assert second.pump_until(lambda: second.closed, 15)
    assert first.alive()


def test_edge_warns_about_hls_at_startup(server_factory):
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge = server_factory(edge_conf(origin, extra="hls { enabled on; }"), name="edge")
    assert wait_for(lambda: "edge does not do hls" in edge.log_text(), 15)


def test_player_params_travel_upstream(server_factory, media_file, publisher_factory,
                                       hook_server):  # noqa: F811
    origin_conf = ORIGIN_CONF.replace("vhost __defaultVhost__ { }", f"""
vhost __defaultVhost__ {{ http_hooks {{ enabled on; on_play {hook_server}; }} }}""")
    origin = server_factory(origin_conf, name="origin")
    edge = server_factory(edge_conf(origin), name="edge")
    publisher_factory(origin.url(), media_file)
    time.sleep(1)
    v = RtmpTestClient(edge.url("live/livestream?token=abc123"))
    assert v.play() and v.pump_until(lambda: len(v.media) > 5, 15)
    plays = [c for c in HookRecorder.calls if c["action"] == "on_play"]
    assert len(plays) == 1 and plays[0]["param"] == "?token=abc123"


def test_switch_delivers_new_sequence_headers(server_factory, media_file, publisher_factory):
    a = server_factory(ORIGIN_CONF, name="a")
    b = server_factory(ORIGIN_CONF, name="b")
    edge = server_factory(edge_conf(a, b), name="edge")
    publisher_factory(a.url(), media_file)
    publisher_factory(b.url(), media_file)
    v = RtmpTestClient(edge.url())
    assert v.play()
    assert v.pump_until(lambda: sum(1 for t, _, _ in v.media if t == 9) > 10, 30)   # from A
    killed_at = len(v.media)
    a.proc.send_signal(signal.SIGKILL)

    def video_after_switch():
        video = [p for t, _, p in v.media if t == 9]
        headers = [i for i, p in enumerate(video) if flv.is_video_sequence_header(p)]
        # one header from A, one from B after the switch, and a frame after it
        return video[headers[1] + 1:] if len(headers) >= 2 else []

    assert v.pump_until(lambda: video_after_switch()
                        and any(t == 18 for t, _, _ in v.media[killed_at:]), 30)   # + metadata
    assert flv.is_video_keyframe(video_after_switch()[0])    # video resumes at a keyframe


def test_edge_publish_hooks_paired_when_every_origin_fails(server_factory, media_file,
                                                           publisher_factory, hook_server):  # noqa: F811
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge = server_factory(edge_conf(origin, extra=f"""
    http_hooks {{ enabled on; on_publish {hook_server}; on_unpublish {hook_server}; }}"""),
                          name="edge")
    pub = publisher_factory(edge.url("live/pushed"), media_file)
    assert wait_for(lambda: "publish __defaultVhost__/live/pushed" in origin.log_text(), 30)
    origin.proc.send_signal(signal.SIGKILL)
    assert wait_for(lambda: not pub.alive(), 40), "encoder disconnected once every origin failed"
    actions = [c["action"] for c in HookRecorder.calls]
    assert wait_for(
        lambda: [c["action"] for c in HookRecorder.calls].count("on_unpublish") == 1, 15)
    assert actions.count("on_publish") == 1
    assert wait_for(lambda: "every origin failed" in edge.log_text(), 15)
