"""The browser pages in a real browser: Debian's chromium, headless, driven by playwright.

Real processes from configs: an origin (HTTP-FLV, HLS, API on its own port, CORS), an edge
pulling from it (API behind basic auth), nginx's HLS cache tier (nginx/nginx.conf) in front of
the origin's http_server, and ffmpeg publishing. The pages are srsedge's own (/, /players/,
/console/) with mpegts.js/hls.js from www/node_modules (npm ci). The oracles are the video
element (currentTime advances, videoWidth) and the HTTP API (players, kicked clients).
Screenshots of every page go to the test's tmp dir.

Playwright never downloads a browser here: it launches /usr/bin/chromium (apt package
chromium, scripts/install-systools.sh); never run `playwright install`.
"""
import os
import shutil
import tempfile
import time

import pytest
import requests

from lib.server.http.pages import VENDOR_JS, WWW
from tests.conftest import (ROOT, Player, Publisher, ServerProc, free_port, need_tool, wait_for,
                            wait_port)
from tests.test_nginx_tier import Tier, origins

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PLAY_SECONDS = 8.0
MIN_ADVANCE = 4.0
USER, PASSWORD = "admin", "s3cret"

ORIGIN_CONF = """
listen 127.0.0.1:{port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:{api}; crossdomain on; }
http_server { enabled on; listen 127.0.0.1:{http}; dir {dir}/www; }
vhost __defaultVhost__ {
    hls { enabled on; hls_path {dir}/www; hls_fragment 2; hls_window 12; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
"""
EDGE_CONF = """
listen 127.0.0.1:{port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:{api}; crossdomain on;
           auth { enabled on; username %s; password %s; } }
http_server { enabled on; listen 127.0.0.1:{http}; dir {dir}/www; }
vhost __defaultVhost__ {
    cluster { mode remote; origin 127.0.0.1:{origin}; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
""" % (USER, PASSWORD)


class Node:
    """A srsedge process with RTMP, HTTP server and API ports of its own."""

    def __init__(self, tmp, name, conf, **extra):
        self.http, self.api = free_port(), free_port()
        text = conf.replace("{http}", str(self.http)).replace("{api}", str(self.api))
        for key, value in extra.items():
            text = text.replace("{%s}" % key, str(value))
        self.proc = ServerProc(tmp, text, name=name)
        (self.proc.dir / "www").mkdir()
        self.proc.start()
        wait_port(self.http, proc=self.proc.proc)
        wait_port(self.api, proc=self.proc.proc)

    @property
    def port(self):
        return self.proc.port

    def page(self, path):
        return f"http://127.0.0.1:{self.http}{path}"

    def api_get(self, path, auth=None):
        return requests.get(f"http://127.0.0.1:{self.api}{path}", auth=auth, timeout=5).json()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, media_file):
    need_tool("ffmpeg")
    need_tool("nginx")
    missing = [p for p in VENDOR_JS.values() if not os.path.exists(WWW + p)]
    if missing:
        pytest.skip(f"players not installed ({missing[0]}): run `make www` (npm ci in www/)")
    tmp = tmp_path_factory.mktemp("browser")
    origin = Node(tmp, "origin", ORIGIN_CONF)
    edge = Node(tmp, "edge", EDGE_CONF, origin=origin.port)
    tier = Tier(origins(origin.http, origin.http)).start()      # the shipped tier, nginx/run.sh
    publisher = Publisher(origin.proc.url("live/livestream"), media_file)
    try:
        playlist = origin.page("/live/livestream.m3u8")
        assert wait_for(lambda: requests.get(playlist, timeout=5).text.count("#EXTINF") >= 2,
                        timeout=40, interval=0.5), "no HLS playlist with 2 segments"
        yield {"origin": origin, "edge": edge, "nginx": tier.base,
               "tmp": tmp}
    finally:
        publisher.stop()
        tier.stop()
        shutil.rmtree(tier.conf_dir, ignore_errors=True)
        shutil.rmtree(tier.runtime, ignore_errors=True)
        edge.proc.stop()
        origin.proc.stop()


@pytest.fixture(scope="module")
def browser(cluster):
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed (scripts/install-systools.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (requirements-dev.txt)")
    profile = tempfile.mkdtemp(prefix="srsedge-chromium-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1360, "height": 900})
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def open_page(browser, url):
    """A new tab on `url`, with its uncaught errors collected in page.errors."""
    page = browser.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url, wait_until="load", timeout=30000)
    return page


def shoot(page, cluster, name):
    path = cluster["tmp"] / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_h264_decodes_in_this_chromium(browser):
    """Debian's chromium has the proprietary codecs: H.264/AAC in MediaSource."""
    page = browser.new_page()
    try:
        ok = page.evaluate("""() => ['video/mp4; codecs="avc1.64001e"', 'audio/mp4; codecs="mp4a.40.2"']
                             .map(t => MediaSource.isTypeSupported(t))""")
    finally:
        page.close()
    assert ok == [True, True], "this chromium cannot decode H.264/AAC in MediaSource"


def test_landing_page(cluster, browser):
    origin = cluster["origin"]
    page = open_page(browser, origin.page("/"))
    try:
        text = page.inner_text("body")
        assert "srsedge" in page.title()
        assert f"rtmp://127.0.0.1:{origin.port}/live/livestream" in text
        assert f"http://127.0.0.1:{origin.http}/live/livestream.flv" in text
        assert f"http://127.0.0.1:{origin.http}/live/livestream.m3u8" in text
        assert "live/livestream" in page.inner_text("ul.live")       # live now
        assert page.locator("a[href='/console/']").count() >= 1
        assert page.locator("a[href^='/players/']").count() >= 2
        shoot(page, cluster, "landing")
        assert not page.errors, page.errors
    finally:
        page.close()
    edge = cluster["edge"]
    page = open_page(browser, edge.page("/"))
    try:
        text = page.inner_text("body")
        assert f"edge: it pulls each stream once from 127.0.0.1:{origin.port}" in text
        assert f"http://127.0.0.1:{edge.http}/live/livestream.flv" in text
        assert "an edge makes no HLS" in text
        shoot(page, cluster, "landing-edge")
    finally:
        page.close()


VIDEO_STATE = "() => { const v = document.querySelector('video'); " \
              "return [v.currentTime, v.videoWidth, v.videoHeight]; }"


def test_players_play_from_origin_and_edge(cluster, browser):
    """Four players at once: HTTP-FLV from the origin and from the edge (which pulls it from
    the origin), HLS from the origin and through the nginx cache tier (the HLS edge)."""
    origin, edge = cluster["origin"], cluster["edge"]
    urls = {
        "origin-flv": origin.page("/players/?stream=live/livestream&type=flv"),
        "origin-hls": origin.page("/players/?stream=live/livestream&type=hls"),
        "edge-flv": edge.page("/players/?stream=live/livestream&type=flv"),
        "nginx-hls": cluster["nginx"] + "/players/?stream=live/livestream&type=hls",
    }
    pages = {name: open_page(browser, url) for name, url in urls.items()}
    try:
        started = {}
        deadline = time.time() + 45
        while time.time() < deadline and len(started) < len(pages):
            for name, page in pages.items():
                if name not in started:
                    t, width, _ = page.evaluate(VIDEO_STATE)
                    if t > 0.2 and width > 0:
                        started[name] = True
            time.sleep(0.5)
        assert set(started) == set(pages), {n: p.evaluate(VIDEO_STATE) for n, p in pages.items()}
        before = {name: page.evaluate(VIDEO_STATE)[0] for name, page in pages.items()}
        t0 = time.time()
        time.sleep(PLAY_SECONDS)
        elapsed = time.time() - t0
        after = {name: page.evaluate(VIDEO_STATE) for name, page in pages.items()}
        for name, page in pages.items():
            shoot(page, cluster, f"player-{name}")
        for name, page in pages.items():
            advance = after[name][0] - before[name]
            assert advance >= MIN_ADVANCE, f"{name}: {advance:.2f}s played in {elapsed:.1f}s"
            assert after[name][1] == 320 and after[name][2] == 240, (name, after[name])
            assert "H.264" in page.inner_text("#s-video"), (name, page.inner_text("#s-video"))
            assert not page.errors, (name, page.errors)
    finally:
        for page in pages.values():
            page.close()


def players_of(node, stream_name, auth=None):
    clients = node.api_get("/api/v1/clients?count=100", auth)["clients"]
    streams = {s["id"]: s for s in node.api_get("/api/v1/streams", auth)["streams"]}
    return [c for c in clients if not c["publish"]
            and streams.get(c["stream"], {}).get("name") == stream_name]


def cell(page, selector):
    loc = page.locator(selector)
    return loc.inner_text() if loc.count() else None


def test_console_lists_players_and_kicks(cluster, browser):
    """The console on the origin's http_server reads the API on another port (CORS) and kicks
    a client with a confirmed DELETE (a CORS preflight)."""
    origin = cluster["origin"]
    url = origin.proc.url("live/livestream")
    players = [Player(url, 60), Player(url, 60)]
    page = None
    try:
        assert wait_for(lambda: len(players_of(origin, "livestream")) == 2, timeout=20)
        page = open_page(browser, origin.page("/console/"))
        row = "#streams tr[data-stream='live/livestream']"
        assert wait_for(lambda: cell(page, f"{row} td.players") == "2", timeout=20), \
            cell(page, "#streams")
        assert "H264" in page.inner_text(row)
        victim = players_of(origin, "livestream")[0]["id"]
        shoot(page, cluster, "console")
        page.once("dialog", lambda d: d.accept())
        page.click(f"#clients tr[data-client='{victim}'] button.kick")
        assert wait_for(lambda: origin.api_get(f"/api/v1/clients/{victim}")["code"] == 2049,
                        timeout=15), "the kicked client is still listed"
        assert [c["id"] for c in players_of(origin, "livestream")] != [victim]
        assert wait_for(lambda: cell(page, f"{row} td.players") == "1", timeout=10)
        assert page.locator(f"#clients tr[data-client='{victim}']").count() == 0
        shoot(page, cluster, "console-after-kick")
        assert not page.errors, page.errors
    finally:
        if page is not None:
            page.close()
        for p in players:
            p.kill()


def test_console_edge_behind_auth(cluster, browser):
    """On the edge the API asks for basic auth: the console shows its login, then the edge
    stream with its upstream link (origin, state), and kicks with basic auth (preflight)."""
    edge, origin = cluster["edge"], cluster["origin"]
    player = Player(edge.proc.url("live/livestream"), 60)
    page = None
    try:
        page = open_page(browser, edge.page("/console/"))
        page.wait_for_selector("#login:not(.hidden)", timeout=15000)
        page.fill("#user", USER)
        page.fill("#password", PASSWORD)
        page.click("#login button[type=submit]")
        row = "#streams tr[data-stream='live/livestream']"
        page.wait_for_selector(row, timeout=20000)
        want = f"127.0.0.1:{origin.port}"
        assert wait_for(lambda: want in (cell(page, row) or "")
                        and "streaming" in (cell(page, row) or ""), timeout=20), cell(page, row)
        stream = edge.api_get("/api/v1/streams", (USER, PASSWORD))["streams"][0]
        assert stream["edge"]["origin"] == want
        shoot(page, cluster, "console-edge")
        # a kick across origins with basic auth: the browser's preflight must allow both
        (victim,) = [c["id"] for c in players_of(edge, "livestream", (USER, PASSWORD))]
        page.once("dialog", lambda d: d.accept())
        page.click(f"#clients tr[data-client='{victim}'] button.kick")
        assert wait_for(lambda: edge.api_get(f"/api/v1/clients/{victim}", (USER, PASSWORD))["code"]
                        == 2049, timeout=15), "the kicked edge client is still listed"
        assert not page.errors, page.errors
    finally:
        if page is not None:
            page.close()
        player.kill()


def test_api_cors_preflight_for_kick(cluster):
    """What a browser asks before a cross-origin DELETE with basic auth: allowed to this server's
    own pages (the console), not to another site (tests/test_cross_site.py)."""
    edge = cluster["edge"]
    ask = {"Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "authorization"}
    url = f"http://127.0.0.1:{edge.api}/api/v1/clients/123"
    r = requests.options(url, timeout=5, headers={"Origin": edge.page(""), **ask})
    assert r.status_code == 200
    assert "DELETE" in r.headers["Access-Control-Allow-Methods"]
    allowed = [h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")]
    assert "authorization" in allowed, allowed
    assert r.headers["Access-Control-Allow-Origin"] == edge.page("")
    r = requests.options(url, timeout=5, headers={"Origin": "http://example.test", **ask})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_default_config_serves_the_pages(tmp_path):
    """conf/srs.conf (make run) as shipped, only its ports and dir moved: the three pages answer,
    the console is told the API's port, and a file in http_server.dir overrides a page."""
    text = open(os.path.join(ROOT, "conf", "srs.conf")).read()
    http, api = free_port(), free_port()
    www = tmp_path / "html"
    www.mkdir()
    for old, new in (("listen              1935;", "listen {port};"),
                     ("listen          1985;", f"listen {api};"),
                     ("listen          8080;", f"listen {http};"),
                     ("dir             ./objs/nginx/html;", f"dir {www};")):
        assert old in text, old
        text = text.replace(old, new)
    server = ServerProc(tmp_path, text, name="default").start()
    try:
        wait_port(http, proc=server.proc)
        base = f"http://127.0.0.1:{http}"
        landing = requests.get(base + "/", timeout=5)
        assert landing.status_code == 200 and "text/html" in landing.headers["Content-Type"]
        assert f"rtmp://127.0.0.1:{server.port}/live/livestream" in landing.text
        for path in ("/players/", "/console/", "/players/js/mpegts.js", "/players/js/hls.js",
                     "/assets/srsedge.css"):
            assert requests.get(base + path, timeout=5).status_code == 200, path
        config = requests.get(base + "/console/config.js", timeout=5).text
        assert f'"port": {api}' in config
        r = requests.get(base + "/players?stream=live/x", timeout=5, allow_redirects=False)
        assert (r.status_code, r.headers["Location"]) == (301, "/players/?stream=live/x")
        assert requests.get(base + "/nothing/here", timeout=5).status_code == 404
        (www / "index.html").write_text("<p>mine</p>")
        assert requests.get(base + "/", timeout=5).text == "<p>mine</p>"
    finally:
        server.stop()
