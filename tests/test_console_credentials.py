"""The console's credentials go only to the API they were entered for (issue 20, point 4).

A link `/console/?api=http://elsewhere` must not make the console send the operator's saved
basic-auth credentials to `elsewhere`, and the console asks before it talks to an API host the
link names. In Chromium: srsedge with API auth (its console logs in), then the same tab opens
the console with ?api= pointing at a second local HTTP server that records every request's
Authorization header (and answers like an API that would take them: CORS open, JSON code 0).
Oracles: the recorder's log and what the console shows (www/console/console.js).
"""
import http.server
import json
import threading

import pytest

from tests.conftest import wait_for
from tests.test_browser import PASSWORD, USER, Node, open_page
from tests.test_cross_site import chromium  # noqa: F401 (fixture)

CONF = """
listen 127.0.0.1:{port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:{api};
           auth { enabled on; username %s; password %s; } }
http_server { enabled on; listen 127.0.0.1:{http}; dir {dir}/www; }
vhost __defaultVhost__ { }
""" % (USER, PASSWORD)


class Recorder:
    """An HTTP server that records (method, path, Authorization) of every request."""

    def __init__(self):
        self.seen = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self, body=b""):
                recorder.seen.append((self.command, self.path, self.headers.get("Authorization")))
                self.send_response(200)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Methods", "GET, DELETE, OPTIONS")
                self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self.answer(json.dumps({"code": 0, "data": {}, "vhosts": [], "streams": [],
                                        "clients": []}).encode())

            def do_OPTIONS(self):
                self.answer()

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def authorizations(self):
        return [s for s in self.seen if s[2]]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("console_auth"), "edge", CONF)
    try:
        yield node
    finally:
        node.proc.stop()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def logged_in_console(browser, edge):
    """A tab whose console signed in to the edge's own API (credentials in sessionStorage)."""
    page = open_page(browser, edge.page("/console/"))
    page.wait_for_selector("#login:not(.hidden)", timeout=15000)
    page.fill("#user", USER)
    page.fill("#password", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#status:has-text('live')", timeout=15000)
    return page


@pytest.mark.parametrize("answer", ["accept", "dismiss"])
def test_api_link_never_gets_the_credentials(chromium, edge, recorder, answer):  # noqa: F811
    browser, _ = chromium
    page = logged_in_console(browser, edge)
    asked = []
    try:
        def on_dialog(dialog):
            asked.append(dialog.message)
            getattr(dialog, answer)()
        page.on("dialog", on_dialog)
        page.goto(edge.page(f"/console/?api={recorder.base}"), wait_until="load")
        if answer == "accept":
            # the console talks to the other host (several refreshes), without credentials
            assert wait_for(lambda: len(recorder.seen) >= 8, timeout=15), recorder.seen
            assert recorder.authorizations() == [], "the console sent credentials to ?api="
            assert page.input_value("#api") == recorder.base
        else:
            # declined: the console stays on its own API, signed in, and never asks the other
            page.wait_for_selector("#status:has-text('live')", timeout=15000)
            assert page.input_value("#api") == f"http://127.0.0.1:{edge.api}"
            assert recorder.seen == []
        assert len(asked) == 1 and recorder.base in asked[0], asked
        # back on the own API: its credentials are still there (kept per API), no new login
        page.goto(edge.page("/console/"), wait_until="load")
        page.wait_for_selector("#status:has-text('live')", timeout=15000)
        assert len(asked) == 1
        assert recorder.authorizations() == []
        assert not page.errors, page.errors
    finally:
        page.close()
