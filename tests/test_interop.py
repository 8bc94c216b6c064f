"""Interop with nginx-rtmp (Debian libnginx-mod-rtmp): our edge in front of an nginx-rtmp
origin, and our origin behind an nginx-rtmp `pull` edge.

Oracles are events and our API (tests/test_api.py's ApiProc), never a sleep or a log line: a
publisher is there once the API lists it; upstream links are the API's counts.
"""
import os
import subprocess

import pytest

from tests.conftest import ORIGIN_CONF, free_port, wait_port
from tests.rtmpclient import RtmpTestClient, timestamp_regressions
from tests.test_api import ApiProc, wait_published

WITH_API = "http_api { enabled on; listen {api}; }\n"

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


class NginxRtmp:
    def __init__(self, prefix, application):
        if not os.path.exists(RTMP_MODULE) or not os.path.exists("/usr/sbin/nginx"):
            pytest.skip("nginx with libnginx-mod-rtmp not installed (make test installs it)")
        self.port = free_port()
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "logs").mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(f"""
load_module {RTMP_MODULE};
daemon off;
master_process off;
worker_processes 1;
error_log {prefix}/logs/error.log info;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        chunk_size 4096;
        application live {{
            live on;
            {application}
        }}
    }}
}}
""")
        self.log = prefix / "logs" / "error.log"
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-p", str(prefix), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)

    def url(self, path="live/livestream"):
        return f"rtmp://127.0.0.1:{self.port}/{path}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def api_factory(tmp_path):
    """Our servers with the HTTP API (stopped by pid at the end)."""
    made = []

    def make(name, conf):
        srv = ApiProc(tmp_path, name, conf=WITH_API + conf)
        made.append(srv)
        return srv.start()

    yield make
    for srv in made:
        srv.stop()


def edge_api_conf(origin_port):
    return f"""
listen {{port}};
srs_log_tank console;
vhost __defaultVhost__ {{ cluster {{ mode remote; origin 127.0.0.1:{origin_port}; }} }}
"""


def play_clients(srv):
    return [c for c in srv.clients() if not c["publish"]]


def video_count(v):
    return sum(1 for t, _, _ in v.media if t == 9)


@pytest.fixture
def nginx_factory(tmp_path):
    made = []

    def make(application=""):
        n = NginxRtmp(tmp_path / f"nginx{len(made)}", application)
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()


def test_our_edge_in_front_of_nginx_rtmp_origin(api_factory, nginx_factory, media_file,
                                                publisher_factory):
    nginx = nginx_factory()
    edge = api_factory("edge", edge_api_conf(nginx.port))
    publisher_factory(nginx.url(), media_file)
    viewers = [RtmpTestClient(edge.url()) for _ in range(3)]
    for v in viewers:
        assert v.play()            # nginx-rtmp holds a play until its publisher comes
    for v in viewers:
        assert v.pump_until(lambda v=v: video_count(v) > 30, 30)
        assert timestamp_regressions(v.media) == 0
    assert edge.stream()["edge"]["links_opened"] == 1


def test_our_origin_behind_nginx_rtmp_pull_edge(api_factory, nginx_factory, media_file,
                                                publisher_factory):
    origin = api_factory("origin", ORIGIN_CONF)
    nginx = nginx_factory(f"pull rtmp://127.0.0.1:{origin.port}/live;")
    publisher_factory(origin.url(), media_file)
    assert wait_published(origin)
    viewers = [RtmpTestClient(nginx.url()) for _ in range(3)]
    for v in viewers:
        assert v.play()
    for v in viewers:
        assert v.pump_until(lambda v=v: video_count(v) > 30, 30)
    players = play_clients(origin)             # nginx pulls once for its three viewers
    assert len(players) == 1 and players[0]["name"] == "livestream", players


def test_nginx_rtmp_publishes_into_our_edge_proxy(api_factory, nginx_factory, media_file,
                                                  publisher_factory):
    """Publish through our edge to an nginx-rtmp origin; play it back from nginx."""
    nginx = nginx_factory()
    edge = api_factory("edge", edge_api_conf(nginx.port))
    pub = publisher_factory(edge.url("live/pushed"), media_file)
    assert wait_published(edge, "pushed")     # accepted by the edge once nginx accepted it
    v = RtmpTestClient(nginx.url("live/pushed"))
    assert v.play()
    assert v.pump_until(lambda: video_count(v) > 30, 30)
    assert pub.alive()
