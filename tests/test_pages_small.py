"""Small things the SRS user met on the pages (issue 23 point 9).

- `/favicon.ico` answered 404: a console error on every page in every browser. Now a small
  icon from www/assets/ (a file of that name in http_server.dir still wins, as for pages).
- The players page's Unmute button sat on the picture (absolute, top-left of the video). Now
  it is in a bar under the video: in Chromium, its box and the video's do not intersect.
"""
import os
import shutil
import tempfile

import pytest
import requests

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_http import ServerThread

CONF = """
listen 127.0.0.1:0;
srs_log_tank console;
http_server { enabled on; listen 127.0.0.1:0; dir DIR; }
vhost __defaultVhost__ { http_remux { enabled on; } }
"""


@pytest.fixture
def server(tmp_path):
    srv = ServerThread(CONF.replace("DIR", str(tmp_path))).start()
    yield srv
    srv.stop()


def test_favicon_is_served(server):
    r = requests.get(server.url("/favicon.ico"), timeout=5)
    assert r.status_code == 200, r.status_code
    assert r.headers["Content-Type"].startswith("image/")
    assert r.content[:4] == b"\x00\x00\x01\x00"         # an ICO file
    assert requests.head(server.url("/favicon.ico"), timeout=5).status_code == 200


def test_unmute_button_does_not_cover_the_video(server):
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="srsedge-chromium-")
    try:
        with sync_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1360, "height": 900})
            try:
                page = context.new_page()
                page.goto(server.url("/players/?stream=live/none&type=flv"), wait_until="load")
                video, button = page.locator("#video").bounding_box(), \
                    page.locator("#unmute").bounding_box()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert video and button and video["height"] > 100
    overlap_x = min(video["x"] + video["width"], button["x"] + button["width"]) \
        - max(video["x"], button["x"])
    overlap_y = min(video["y"] + video["height"], button["y"] + button["height"]) \
        - max(video["y"], button["y"])
    assert overlap_x <= 0 or overlap_y <= 0, (video, button)
