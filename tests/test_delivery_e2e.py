"""End to end with real processes: HLS over HTTP from the origin, the shipped nginx tier in
front of a real origin, and RTMP + HTTP-FLV players of one edge stream sharing one link."""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from tests.conftest import ORIGIN_CONF, ROOT, free_port, need_tool, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient
from tests.test_edge import plays_on

HLS_ORIGIN = """
listen {port};
srs_log_tank console;
http_server { enabled on; listen HTTPPORT; dir {dir}/html; }
vhost __defaultVhost__ {
    hls { enabled on; hls_path {dir}/html; hls_fragment 2; hls_window 12; hls_dispose 5; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
"""


def hls_origin(server_factory):
    http_port = free_port()
    srv = server_factory(HLS_ORIGIN.replace("HTTPPORT", str(http_port)), name="origin")
    srv.http_port = http_port
    wait_port(http_port)
    return srv


def test_ffmpeg_plays_hls_over_http_from_the_origin(server_factory, media_file, publisher_factory):
    need_tool("ffmpeg")
    srv = hls_origin(server_factory)
    publisher_factory(srv.url(), media_file)
    url = f"http://127.0.0.1:{srv.http_port}/live/livestream.m3u8"
    assert wait_for(lambda: requests.get(url, timeout=2).text.count("#EXTINF") >= 3, 25)
    res = requests.get(url, timeout=2)
    assert res.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    out = subprocess.run(["ffmpeg", "-v", "error", "-live_start_index", "0", "-i", url, "-t", "5",
                          "-f", "null", "-", "-progress", "pipe:1"],
                         capture_output=True, text=True, timeout=60)
    frames = [int(x) for x in re.findall(r"^frame=(\d+)", out.stdout, re.M)]
    assert out.returncode == 0 and frames and frames[-1] >= 110, out.stderr[-1500:]


def test_rtmp_and_flv_players_share_one_edge_link(server_factory, media_file, publisher_factory):
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge_http = free_port()
    edge = server_factory(f"""
listen {{port}};
srs_log_tank console;
http_server {{ enabled on; listen {edge_http}; dir {{dir}}/html; }}
vhost __defaultVhost__ {{
    cluster {{ mode remote; origin 127.0.0.1:{origin.port}; }}
    http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}
}}
""", name="edge")
    wait_port(edge_http)
    publisher_factory(origin.url(), media_file)
    time.sleep(1)
    rtmp = RtmpTestClient(edge.url())
    assert rtmp.play()
    got = {}

    def flv_reader():
        with requests.get(f"http://127.0.0.1:{edge_http}/live/livestream.flv", stream=True,
                          timeout=10) as r:
            got["status"] = r.status_code
            total = 0
            for chunk in r.iter_content(65536):
                total += len(chunk)
                if total > 200000:
                    break
            got["bytes"] = total

    t = threading.Thread(target=flv_reader)
    t.start()
    rtmp.read_for(3)
    t.join(15)
    assert got.get("status") == 200 and got.get("bytes", 0) > 200000
    assert sum(1 for k, _, _ in rtmp.media if k == 9) > 40
    assert plays_on(origin) == 1                      # one upstream link for both kinds


@pytest.fixture
def nginx_tier():
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        pytest.skip("nginx not installed (make test installs it)")
    # workers of a root master run as nobody: the prefix must be reachable for them
    prefix = pathlib.Path(tempfile.mkdtemp(prefix="srsedge-tier-", dir="/tmp"))
    os.chmod(prefix, 0o755)
    (prefix / "var").mkdir()
    shutil.copy(os.path.join(ROOT, "nginx", "nginx.conf"), prefix)
    made = {}

    def start(origin_http_port):
        port = free_port()
        (prefix / "listen.conf").write_text(f"listen 127.0.0.1:{port};\n")
        (prefix / "upstream.conf").write_text(f"server 127.0.0.1:{origin_http_port};\n")
        proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(prefix),
                                 "-c", "nginx.conf"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        made["proc"] = proc
        wait_port(port, proc=proc)
        return port, prefix / "var" / "access.log"

    yield start
    if "proc" in made and made["proc"].poll() is None:
        made["proc"].terminate()
        made["proc"].wait(10)
    shutil.rmtree(prefix, ignore_errors=True)


def test_shipped_nginx_tier_in_front_of_a_real_origin(server_factory, media_file,
                                                     publisher_factory, nginx_tier):
    srv = hls_origin(server_factory)
    publisher_factory(srv.url(), media_file)
    port, access_log = nginx_tier(srv.http_port)
    base = f"http://127.0.0.1:{port}/live/"
    assert wait_for(lambda: requests.get(base + "livestream.m3u8", timeout=2).text.count("#EXTINF") >= 2, 25)
    seen = {}
    errors = []

    def viewer(n):
        s = requests.Session()
        deadline = time.time() + 12
        while time.time() < deadline:
            try:
                text = s.get(base + "livestream.m3u8", timeout=5).text
                for uri in [x for x in text.splitlines() if x.endswith(".ts")]:
                    if (n, uri) not in seen:
                        r = s.get(base + uri, timeout=5)
                        if r.status_code != 200 or len(r.content) < 1000:
                            errors.append((uri, r.status_code))
                        seen[(n, uri)] = len(r.content)
            except requests.RequestException as e:
                errors.append(str(e))
            time.sleep(0.5)

    threads = [threading.Thread(target=viewer, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:5]
    segments = {uri for _, uri in seen}
    assert len(segments) >= 4
    log = access_log.read_text()
    for uri in segments:
        misses = len(re.findall(rf'GET /live/{re.escape(uri)} .*MISS', log))
        assert misses <= 1, (uri, misses)
