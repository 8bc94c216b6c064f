"""End to end with real processes: HLS over HTTP from the origin, the shipped nginx tier in
front of a real origin, and RTMP + HTTP-FLV players of one edge stream sharing one link."""
import re
import subprocess
import threading
import time

import requests

from tests.conftest import ORIGIN_CONF, free_port, need_tool, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient
from tests.test_edge import plays_on
from tests.test_nginx_tier import origins, tier_factory  # noqa: F401 (a fixture)

HLS_ORIGIN = """
listen {port};
srs_log_tank console;
http_server { enabled on; listen HTTPPORT; dir {dir}/html; }
vhost __defaultVhost__ {
    hls { enabled on; hls_path {dir}/html; hls_fragment 2; hls_window 12; hls_dispose 5; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
"""


def hls_origin(server_factory, fragment=2, window=12):
    http_port = free_port()
    conf = HLS_ORIGIN.replace("HTTPPORT", str(http_port)).replace(
        "hls_fragment 2; hls_window 12;", f"hls_fragment {fragment}; hls_window {window};")
    srv = server_factory(conf, name="origin")
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
    assert rtmp.pump_until(lambda: sum(1 for k, _, _ in rtmp.media if k == 9) > 40, 30)
    t.join(30)
    assert got.get("status") == 200 and got.get("bytes", 0) > 200000
    assert plays_on(origin) == 1                      # one upstream link for both kinds


def test_shipped_nginx_tier_in_front_of_a_real_origin(server_factory, media_file,
                                                     publisher_factory, tier_factory):
    srv = hls_origin(server_factory)
    publisher_factory(srv.url(), media_file)
    tier = tier_factory(origins(srv.http_port, srv.http_port)).start()
    base = f"{tier.base}/live/"
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
    log = tier.var("access.log")
    for uri in segments:
        misses = len(re.findall(rf'GET /live/{re.escape(uri)} .*MISS', log))
        assert misses <= 1, (uri, misses)


def media_sequence(text):
    m = re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)", text, re.M)
    return int(m.group(1)) if m else None


def decoded_frames(url, seconds):
    """ffmpeg's HLS demuxer (not hls.js) plays `url` for `seconds`: (frames, returncode, stderr)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-t", str(seconds), "-f", "null", "-",
                          "-progress", "pipe:1"], capture_output=True, text=True, timeout=90)
    frames = [int(x) for x in re.findall(r"^frame=(\d+)", out.stdout, re.M)]
    return (frames[-1] if frames else 0), out.returncode, out.stderr[-1500:]


def test_nginx_tier_cold_cache_and_first_player_after_idle(server_factory, media_file,
                                                           publisher_factory, tier_factory):
    """ffmpeg plays through a cold cache; then, after an idle period longer than hls_window (the
    segments the cache saw are deleted at the origin), the first player gets a playlist as fresh
    as the origin's (media sequence within 1) and every segment in it loads."""
    need_tool("ffmpeg")
    srv = hls_origin(server_factory, fragment=2, window=4)
    publisher_factory(srv.url(), media_file)
    tier = tier_factory(origins(srv.http_port, srv.http_port)).start()
    origin_url = f"http://127.0.0.1:{srv.http_port}/live/livestream.m3u8"
    tier_url = f"{tier.base}/live/livestream.m3u8"
    assert wait_for(lambda: requests.get(origin_url, timeout=2).text.count("#EXTINF") >= 2, 25)

    frames, rc, err = decoded_frames(tier_url, 4)
    assert rc == 0 and frames >= 60, (frames, err)          # 25 fps, 4 s

    seen = media_sequence(requests.get(tier_url, timeout=5).text)
    # idle: no player until the origin's window has moved past everything the cache saw
    assert wait_for(lambda: media_sequence(requests.get(origin_url, timeout=2).text) >= seen + 4,
                    40, 0.5)
    text = requests.get(tier_url, timeout=5).text
    origin_now = media_sequence(requests.get(origin_url, timeout=2).text)
    assert abs(origin_now - media_sequence(text)) <= 1, (origin_now, text)
    for uri in [x for x in text.splitlines() if x.endswith(".ts")]:
        r = requests.get(f"{tier.base}/live/{uri}", timeout=5)
        assert r.status_code == 200 and len(r.content) > 1000, (uri, r.status_code)
