"""HTTPS for the HTTP server and the API (SRS's `http_server { https {...} }` and
`http_api { https {...} }`) with a self-signed certificate: the API, HTTP-FLV and HLS over TLS
(requests, ffprobe), and in Chromium the console and the FLV player on https pages; a key or
certificate that cannot be loaded stops the start with a line naming the directive."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from lib.server.http.pages import VENDOR_JS, WWW
from tests.conftest import ServerProc, free_port, need_tool, wait_for, wait_port
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, VIDEO_STATE

CONF = """
listen 127.0.0.1:{port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:{api};
           https { enabled on; listen 127.0.0.1:{api_tls}; key {dir}/server.key; cert {dir}/server.crt; } }
http_server { enabled on; listen 127.0.0.1:{http}; dir {dir}/www;
              https { enabled on; listen 127.0.0.1:{http_tls}; key {dir}/server.key; cert {dir}/server.crt; } }
vhost __defaultVhost__ {
    hls { enabled on; hls_path {dir}/www; hls_fragment 1; hls_window 6; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
}
"""


def self_signed(directory):
    need_tool("openssl")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(directory / "server.key"), "-out", str(directory / "server.crt")],
                   check=True, capture_output=True, timeout=60)
    return directory / "server.crt"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, media_file):
    need_tool("ffmpeg")
    tmp = tmp_path_factory.mktemp("https")
    ports = {name: free_port() for name in ("api", "api_tls", "http", "http_tls")}
    text = CONF
    for name, port in ports.items():
        text = text.replace("{%s}" % name, str(port))
    server = ServerProc(tmp, text, name="tls")
    (server.dir / "www").mkdir()
    cert = self_signed(server.dir)
    server.start()
    for port in ports.values():
        wait_port(port, proc=server.proc)
    publisher = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i",
                                  str(media_file), "-c", "copy", "-f", "flv",
                                  server.url("live/livestream")], stdin=subprocess.DEVNULL)
    try:
        yield {"server": server, "cert": str(cert), **ports}
    finally:
        publisher.kill()
        publisher.wait()
        server.stop()


def test_api_hls_and_flv_over_tls(tls_server):
    cert, api = tls_server["cert"], f"https://127.0.0.1:{tls_server['api_tls']}"
    versions = requests.get(f"{api}/api/v1/versions", verify=cert, timeout=5).json()
    assert versions["code"] == 0
    assert wait_for(lambda: any(s["publish"]["active"] for s in requests.get(
        f"{api}/api/v1/streams", verify=cert, timeout=5).json()["streams"]), 15)
    base = f"https://127.0.0.1:{tls_server['http_tls']}"
    playlist = wait_for(lambda: (lambda r: r.text if r.status_code == 200 and ".ts" in r.text
                                 else None)(requests.get(f"{base}/live/livestream.m3u8",
                                                         verify=cert, timeout=5)), 30)
    assert playlist and "#EXTM3U" in playlist
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of",
                            "csv=p=0", f"{base}/live/livestream.flv"],
                           capture_output=True, text=True, timeout=30)
    assert sorted(set(probe.stdout.split())) == ["aac", "h264"], probe.stderr
    # the plain ports keep answering plain HTTP
    plain = requests.get(f"http://127.0.0.1:{tls_server['api']}/api/v1/versions", timeout=5)
    assert plain.json()["code"] == 0


def test_console_and_flv_player_on_https_pages_in_chromium(tls_server):
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed (scripts/install-systools.sh installs it)")
    missing = [p for p in VENDOR_JS.values() if not os.path.exists(WWW + p)]
    if missing:
        pytest.skip(f"players not installed ({missing[0]}): run `make www`")
    sync_api = pytest.importorskip("playwright.sync_api")
    base = f"https://127.0.0.1:{tls_server['http_tls']}"
    profile = tempfile.mkdtemp(prefix="srsedge-chromium-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            ignore_https_errors=True)        # the test's self-signed certificate
        try:
            errors = []
            console = context.new_page()
            console.on("pageerror", lambda e: errors.append(str(e)))
            console.goto(f"{base}/console/", wait_until="load", timeout=30000)
            row = "#streams tr[data-stream='live/livestream']"
            console.wait_for_selector(row, timeout=20000)   # read over the API's https port
            player = context.new_page()
            player.on("pageerror", lambda e: errors.append(str(e)))
            player.goto(f"{base}/players/?stream=live/livestream&type=flv", wait_until="load",
                        timeout=30000)
            assert wait_for(lambda: player.evaluate(VIDEO_STATE)[0] > 0.5, 30), \
                player.evaluate(VIDEO_STATE)
            start = player.evaluate(VIDEO_STATE)[0]
            assert wait_for(lambda: player.evaluate(VIDEO_STATE)[0] > start + 2, 15)
            assert not errors, errors
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def test_unloadable_certificate_stops_the_start_naming_the_directive(tmp_path):
    text = CONF.replace("{api}", str(free_port())).replace("{api_tls}", str(free_port())) \
        .replace("{http}", str(free_port())).replace("{http_tls}", str(free_port()))
    server = ServerProc(tmp_path, text, name="nocert")
    (server.dir / "www").mkdir()
    server.start(wait=False)
    assert server.proc.wait(20) != 0
    log = server.log_text()
    assert "http_api.https" in log or "http_server.https" in log
    assert "server.crt" in log
