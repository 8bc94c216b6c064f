"""Hooks come in pairs and sources are never orphaned (issue 14, defects 3 and 6).

Real server processes and a real HTTP hook server that can answer slowly, so a client waits in
a hook while others come and go. Oracles: the hook server's record and the HTTP API.
"""
import json
import threading
import time

import requests

from tests.conftest import free_port, wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_hooks import HookHandler, HookServer
from tests.test_nothing_lost import AUDIO_SH, VIDEO_SH, audio_frame, metadata, video_frame

CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen %(api)d; }
vhost __defaultVhost__ {
    http_hooks { enabled on; %(hooks)s }
}
"""


def hook_server():
    srv = HookServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def start(server_factory, hooks, **answers):
    api = free_port()
    lines = " ".join(f"{name} {hooks.answer('/' + name, **kw)};" for name, kw in answers.items())
    srv = server_factory(CONF % {"api": api, "hooks": lines})
    return srv, f"http://127.0.0.1:{api}/api/v1"


def connected(url):
    c = RtmpTestClient(url)
    assert c.pump_until(lambda: c.session.state == "connected")
    return c


def publish_in_background(client):
    """Start a publish (createStream, then publish) and pump the client in a thread."""
    thread = threading.Thread(target=client.publish, kwargs={"timeout": 15}, daemon=True)
    thread.start()
    return thread


def calls(hooks, action):
    return [body for _, _, body in hooks.calls if body.get("action") == action]


def send_gop(pub, first=0, frames=10):
    pub.send_media(18, 0, metadata())
    pub.send_media(9, 0, VIDEO_SH)
    pub.send_media(8, 0, AUDIO_SH)
    for i in range(frames):
        pub.send_media(9, i * 40, video_frame(first + i, i == 0))
        pub.send_media(8, i * 40, audio_frame())


def test_player_leaving_during_on_publish_does_not_orphan_the_source(server_factory):
    """Defect 3: the publisher waited in its on_publish hook while the only (waiting) player
    left; the source was dropped from the registry and the publisher published into an orphan:
    new players got nothing, a second publisher was let in, the API lost the stream."""
    hooks = hook_server()
    srv, api = start(server_factory, hooks, on_publish={"delay": 1.5})
    url = srv.url("live/orphan")
    waiting = connected(url)
    assert waiting.play()
    pub = connected(url)
    thread = publish_in_background(pub)
    assert wait_for(lambda: calls(hooks, "on_publish"), 15)
    waiting.close()                        # leaves while the publisher waits in its hook
    thread.join(15)
    assert pub.session.state == "publishing"
    send_gop(pub)
    streams = wait_for(lambda: [s for s in requests.get(f"{api}/streams").json()["streams"]
                                if s["name"] == "orphan" and s["publish"]["active"]], 5)
    assert streams, "the API lists the published stream"
    late = connected(url)
    assert late.play()
    assert late.pump_until(lambda: any(t == 9 for t, _, _ in late.media), 15), \
        "a new player gets the publisher's media"
    second = connected(url)
    second.publish()
    assert second.session.state != "publishing", "a second publisher is refused"
    for c in (pub, late, second):
        c.close()
    hooks.shutdown()


def test_refused_publisher_gets_on_unpublish_after_its_on_publish(server_factory):
    """Defect 6: two publishers pass a slow on_publish at once; the loser is refused after its
    on_publish was accepted, and got no on_unpublish. Every accepted on_publish is paired."""
    hooks = hook_server()
    srv, api = start(server_factory, hooks, on_publish={"delay": 1.0}, on_unpublish={})
    url = srv.url("live/twice")
    pubs = [connected(url) for _ in range(2)]
    for thread in [publish_in_background(p) for p in pubs]:
        thread.join(15)
    states = sorted(p.session.state for p in pubs)
    assert states.count("publishing") == 1, states
    for p in pubs:
        p.close()
    ok = wait_for(lambda: len(calls(hooks, "on_unpublish")) == 2, 10)
    published = sorted(b["client_id"] for b in calls(hooks, "on_publish"))
    unpublished = sorted(b["client_id"] for b in calls(hooks, "on_unpublish"))
    assert ok and published == unpublished, (published, unpublished)
    hooks.shutdown()


def test_refused_player_gets_on_stop_after_its_on_play(server_factory):
    """Defect 6: a play refused after on_play was accepted (here: an edge whose token_traverse
    finds no origin) sent on_play without on_stop."""
    hooks = hook_server()
    dead = free_port()
    api = free_port()
    conf = f"""
listen {{port}};
srs_log_tank console;
http_api {{ enabled on; listen {api}; }}
vhost __defaultVhost__ {{
    cluster {{ mode remote; origin 127.0.0.1:{dead}; token_traverse on; }}
    http_hooks {{ enabled on; on_play {hooks.answer('/on_play')}; on_stop {hooks.answer('/on_stop')}; }}
}}
"""
    srv = server_factory(conf)
    player = connected(srv.url("live/refused?token=x"))
    assert not player.play(15) or player.session.state == "closed"
    assert wait_for(lambda: calls(hooks, "on_stop"), 15), "on_stop follows the accepted on_play"
    assert [b["client_id"] for b in calls(hooks, "on_play")] == \
        [b["client_id"] for b in calls(hooks, "on_stop")]
    player.close()
    hooks.shutdown()


def test_on_close_reports_the_bytes_a_player_was_sent(server_factory):
    """Defect 6: on_close always said send_bytes 0 for a player (its consumer was cleared
    before the hook body was built)."""
    hooks = hook_server()
    srv, api = start(server_factory, hooks, on_close={}, on_connect={})
    url = srv.url("live/bytes")
    pub = connected(url)
    assert pub.publish()
    player = connected(url)
    assert player.play()
    send_gop(pub)
    assert player.pump_until(lambda: sum(1 for t, _, _ in player.media if t == 9) >= 10, 15)
    got = sum(len(p) for _, _, p in player.media)
    player.close()
    body = wait_for(lambda: [b for b in calls(hooks, "on_close")
                             if b["client_id"] != calls(hooks, "on_connect")[0]["client_id"]], 5)
    assert body and body[0]["send_bytes"] >= got, body
    pub.close()
    hooks.shutdown()


class SlowForSomeHooks(HookServer):
    """Answers 0 to every hook; an on_play whose param holds `slow` waits 2 s first."""

    def __init__(self):
        super().__init__()
        self.answer("/on_play")

    def delay_for(self, body):
        return 2.0 if "slow" in body.get("param", "") else 0.0


def test_token_traverse_during_a_link_stop_opens_one_upstream_link(server_factory, media_file,
                                                                   publisher_factory):
    """Defect 3 with token_traverse: player A waits in its token check at the origin while the
    stream's last other player leaves and the edge's grace period ends. Before pinning, the
    source was dropped meanwhile: A then pulled into an orphan and the next player made a
    second source and a second upstream link for the same stream."""
    hooks = SlowForSomeHooks()
    hooks.RequestHandlerClass = SlowHookHandler
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    origin_api = free_port()
    origin = server_factory(f"""
listen {{port}};
srs_log_tank console;
http_api {{ enabled on; listen {origin_api}; }}
vhost __defaultVhost__ {{ http_hooks {{ enabled on; on_play {hooks.url('/on_play')}; }} }}
""", name="origin")
    publisher_factory(origin.url("live/tt"), media_file)
    edge = server_factory(f"""
listen {{port}};
srs_log_tank console;
vhost __defaultVhost__ {{
    cluster {{ mode remote; origin 127.0.0.1:{origin.port}; token_traverse on;
              edge_idle_timeout 0.5; }}
}}
""", name="edge")
    first = connected(edge.url("live/tt?token=fast"))
    assert first.play()
    assert first.pump_until(lambda: any(t == 9 for t, _, _ in first.media), 10)
    waiting = connected(edge.url("live/tt?token=slow"))
    thread = threading.Thread(target=waiting.play, kwargs={"timeout": 15}, daemon=True)
    thread.start()
    assert wait_for(lambda: any("slow" in b.get("param", "") for b in calls(hooks, "on_play")), 15)
    first.close()                          # the last attached player leaves; 0.5 s grace
    thread.join(15)
    assert waiting.session.state == "playing"
    late = connected(edge.url("live/tt?token=fast"))
    assert late.play()
    for c in (waiting, late):
        assert c.pump_until(lambda c=c: sum(1 for t, _, _ in c.media if t == 9) > 5, 10)

    def edge_links():
        clients = requests.get(f"http://127.0.0.1:{origin_api}/api/v1/clients?count=100").json()
        return [c for c in clients["clients"] if not c["publish"]]
    # token checks close at once, upstream links stay: one for the stream
    assert wait_for(lambda: len(edge_links()) == 1, 15), edge_links()
    for c in (waiting, late):
        c.close()
    hooks.shutdown()


class SlowHookHandler(HookHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.loads(raw)
        self.server.calls.append((self.path, self.client_address[1], body))
        time.sleep(self.server.delay_for(body))
        self.send_response(200)
        self.send_header("Content-Length", "1")
        self.end_headers()
        self.wfile.write(b"0")
