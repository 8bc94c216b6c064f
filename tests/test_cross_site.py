"""Web pages of other sites against the HTTP API (issue 20, point 3): no reading, no kicking.

With auth off (the default) the API must not let a page on another origin read the clients or
kick one, through fetch (CORS, with `crossdomain on` or off), a script tag (JSONP) or a "simple"
POST (no preflight); this server's own console (its http_server's port) keeps reading and
kicking (tests/test_browser.py drives it), and `jsonp on` gives SRS's console read-only JSONP.
The policy is lib/server/api/cross_origin.py.

Oracles: the API itself (is the victim still listed?) and, in Chromium, what the attacking page
could see (served by a plain HTTP server on another port of 127.0.0.1, so another origin).
"""
import http.server
import os
import shutil
import tempfile
import threading

import pytest
import requests

from lib.config import ConfigError, parse_text
from lib.server.api.cross_origin import CrossOrigin
from tests.conftest import wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, Node

CONF = """
listen 127.0.0.1:{port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:{api}; %s }
http_server { enabled on; listen 127.0.0.1:{http}; dir {dir}/www; }
vhost __defaultVhost__ { }
"""
EVIL = "http://evil.example"


def start(tmp_path_factory, name, api_extra):
    return Node(tmp_path_factory.mktemp(name), name, CONF % api_extra)


@pytest.fixture(scope="module")
def open_api(tmp_path_factory):
    """The defaults: crossdomain on, auth off, no jsonp, no allow_origin."""
    node = start(tmp_path_factory, "open", "")
    try:
        yield node
    finally:
        node.proc.stop()


@pytest.fixture(scope="module")
def closed_api(tmp_path_factory):
    node = start(tmp_path_factory, "closed", "crossdomain off;")
    try:
        yield node
    finally:
        node.proc.stop()


@pytest.fixture(scope="module")
def jsonp_api(tmp_path_factory):
    """`jsonp on`, for SRS's console: script tags may read, never kick."""
    node = start(tmp_path_factory, "jsonp_on", "jsonp on;")
    try:
        yield node
    finally:
        node.proc.stop()


class Victim:
    """An RTMP player the attacker wants to kick, with its client id from the API."""

    def __init__(self, node, stream):
        self.node = node
        before = self.ids()
        self.client = RtmpTestClient(node.proc.url(f"live/{stream}"))
        assert self.client.play()
        assert wait_for(lambda: self.ids() - before, timeout=10)
        (self.id,) = self.ids() - before

    def ids(self):
        return {c["id"] for c in self.node.api_get("/api/v1/clients?count=1000")["clients"]}

    def connected(self):
        return self.node.api_get(f"/api/v1/clients/{self.id}")["code"] == 0

    def close(self):
        self.client.close()


@pytest.fixture
def victims():
    made = []

    def make(node, stream="victim"):
        made.append(Victim(node, stream))
        return made[-1]
    yield make
    for v in made:
        v.close()


def api_url(node, path):
    return f"http://127.0.0.1:{node.api}{path}"


def own_pages(node):
    return f"http://127.0.0.1:{node.http}"


# ------------------------------------------------------------------ the policy, no server
def policy(api_block, pages_port=8080, host="edge.example:1985"):
    conf = parse_text(f"http_api {{ enabled on; {api_block} }}").http_api
    return CrossOrigin(conf, pages_port, host)


def test_allow_origin_is_parsed_as_browsers_write_origins():
    conf = parse_text("http_api { allow_origin HTTPS://Console.Example:443/ http://a:80 "
                      "http://b:8080 *; }").http_api
    assert conf.allow_origin == ["https://console.example", "http://a", "http://b:8080", "*"]
    for bad in ("console.example", "http://a/console/", "ftp://a", "http://", "http://u@a"):
        with pytest.raises(ConfigError):
            parse_text(f"http_api {{ allow_origin {bad}; }}")
    assert parse_text("").http_api.jsonp is False


def test_trusted_pages_and_what_they_may_do():
    p = policy("")
    own = "http://edge.example:8080"
    assert p.trusted(own) and p.trusted("http://edge.example:1985")      # pages, the API itself
    for other in ("http://evil.example", "http://edge.example:8081", "https://edge.example:8080",
                  "http://other.example:8080", "null", ""):
        assert not p.trusted(other), other
        assert not p.may_change_state("DELETE", other or "null")
        assert p.may_change_state("GET", other) and p.may_change_state("HEAD", other)
    assert p.may_change_state("DELETE", own) and p.may_change_state("DELETE", "")   # no page: curl
    assert not p.may_change_state("POST", "http://evil.example")
    assert not policy("", pages_port=None).trusted(own)                  # no http_server
    assert not policy("", host="").trusted(own)                          # no Host header
    assert policy("", pages_port=80, host="edge.example").trusted("http://edge.example")
    assert policy("", host="[::1]:1985").trusted("http://[::1]:8080")


def test_cors_headers():
    own, evil = "http://edge.example:8080", "http://evil.example"
    headers = dict(policy("").cors_headers(own, preflight=True))
    assert headers["Access-Control-Allow-Origin"] == own and headers["Vary"] == "Origin"
    assert "DELETE" in headers["Access-Control-Allow-Methods"]
    assert dict(policy("").cors_headers(evil, preflight=True)) == {"Vary": "Origin"}
    headers = dict(policy("allow_origin *;").cors_headers(evil, preflight=True))
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "DELETE" not in headers["Access-Control-Allow-Methods"]
    headers = dict(policy(f"allow_origin {evil};").cors_headers(evil, preflight=False))
    assert headers["Access-Control-Allow-Origin"] == evil
    assert policy("crossdomain off; allow_origin *;").cors_headers(own, preflight=True) == []


def test_jsonp_only_when_asked_and_never_with_auth():
    query = {"callback": ["cb"]}
    assert policy("").jsonp_callback(query) == ""
    assert policy("jsonp on;").jsonp_callback(query) == "cb"
    assert policy("jsonp on;").jsonp_callback({"callback": ["<script>"]}) == ""
    assert policy("jsonp on; auth { enabled on; username u; password p; }") \
        .jsonp_callback(query) == ""
    assert CrossOrigin.jsonp_method({"method": ["delete"]}) == "DELETE"
    assert CrossOrigin.jsonp_method({}) == "GET"


# ------------------------------------------------------------------ the policy over HTTP
def test_preflight_allows_delete_only_to_this_servers_pages(open_api):
    ask = {"Access-Control-Request-Method": "DELETE",
           "Access-Control-Request-Headers": "authorization"}
    r = requests.options(api_url(open_api, "/api/v1/clients/x"), timeout=5,
                         headers={"Origin": EVIL, **ask})
    assert "Access-Control-Allow-Origin" not in r.headers, r.headers
    assert "DELETE" not in r.headers.get("Access-Control-Allow-Methods", "")
    r = requests.options(api_url(open_api, "/api/v1/clients/x"), timeout=5,
                         headers={"Origin": own_pages(open_api), **ask})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == own_pages(open_api)
    assert "DELETE" in r.headers["Access-Control-Allow-Methods"]
    assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
    assert "Origin" in r.headers["Vary"]


def test_reading_is_shared_only_with_this_servers_pages(open_api):
    r = requests.get(api_url(open_api, "/api/v1/clients"), headers={"Origin": EVIL}, timeout=5)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.get(api_url(open_api, "/api/v1/clients"),
                     headers={"Origin": own_pages(open_api)}, timeout=5)
    assert r.headers["Access-Control-Allow-Origin"] == own_pages(open_api)
    # another port or another name of this host is another site
    for other in (f"http://localhost:{open_api.http}", f"http://127.0.0.1:{open_api.api + 1}",
                  f"https://127.0.0.1:{open_api.http}"):
        r = requests.get(api_url(open_api, "/api/v1/versions"), headers={"Origin": other}, timeout=5)
        assert "Access-Control-Allow-Origin" not in r.headers, other


@pytest.mark.parametrize("api", ["open_api", "closed_api"])
def test_no_kick_from_another_site(api, request, victims):
    node = request.getfixturevalue(api)
    victim = victims(node)
    path = f"/api/v1/clients/{victim.id}"
    r = requests.delete(api_url(node, path), headers={"Origin": EVIL}, timeout=5)
    assert r.status_code == 403, (r.status_code, r.text)
    # a "simple" cross-site POST (a form, or fetch no-cors): no preflight, must change nothing
    r = requests.post(api_url(node, path), data="x", timeout=5,
                      headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert r.status_code in (403, 405)
    # SRS's JSONP kick: a script tag's GET
    r = requests.get(api_url(node, f"{path}?callback=steal&method=DELETE"), timeout=5)
    assert not r.text.startswith("steal(")
    assert victim.connected(), "a cross-site request kicked the client"
    # tools without a page (curl, scripts) still kick with a real DELETE
    assert requests.delete(api_url(node, path), timeout=5).json()["code"] == 0
    assert wait_for(lambda: not victim.connected(), timeout=10)


@pytest.mark.parametrize("api", ["open_api", "closed_api"])
def test_jsonp_is_off_by_default(api, request):
    node = request.getfixturevalue(api)
    r = requests.get(api_url(node, "/api/v1/clients?callback=steal"), timeout=5)
    assert r.headers["Content-Type"] == "application/json"
    assert not r.text.startswith("steal(")
    assert r.json()["code"] == 0


def test_jsonp_on_is_read_only_and_allow_origin(tmp_path_factory, victims):
    node = start(tmp_path_factory, "jsonp",
                 f"jsonp on; allow_origin {EVIL} http://console.example:8080/ *;")
    try:
        victim = victims(node)
        r = requests.get(api_url(node, "/api/v1/clients?callback=angular.callbacks._1"), timeout=5)
        assert r.headers["Content-Type"] == "text/javascript"
        assert r.text.startswith("angular.callbacks._1({") and victim.id in r.text
        r = requests.get(api_url(node, f"/api/v1/clients/{victim.id}?callback=f&method=DELETE"),
                         timeout=5)
        assert r.status_code == 405 and not r.text.startswith("f(")
        assert victim.connected()
        # `*`: any page reads, none kicks; a listed origin does both
        r = requests.get(api_url(node, "/api/v1/versions"),
                         headers={"Origin": "http://other.example"}, timeout=5)
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        r = requests.options(api_url(node, "/api/v1/clients/x"), timeout=5, headers={
            "Origin": "http://other.example", "Access-Control-Request-Method": "DELETE"})
        assert "DELETE" not in r.headers.get("Access-Control-Allow-Methods", "")
        assert requests.delete(api_url(node, f"/api/v1/clients/{victim.id}"), timeout=5,
                               headers={"Origin": "http://other.example"}).status_code == 403
        r = requests.options(api_url(node, "/api/v1/clients/x"), timeout=5, headers={
            "Origin": "http://console.example:8080", "Access-Control-Request-Method": "DELETE"})
        assert r.headers["Access-Control-Allow-Origin"] == "http://console.example:8080"
        assert "DELETE" in r.headers["Access-Control-Allow-Methods"]
        r = requests.delete(api_url(node, f"/api/v1/clients/{victim.id}"), timeout=5,
                            headers={"Origin": EVIL})
        assert r.json()["code"] == 0
        assert wait_for(lambda: not victim.connected(), timeout=10)
    finally:
        node.proc.stop()


# ------------------------------------------------------------------ a real attacking page
ATTACK_PAGE = """<!doctype html><meta charset="utf-8"><title>cute cats</title><script>
const q = new URLSearchParams(location.search);
const api = q.get("api");
window.result = {stolen: []};
window.steal = (data) => window.result.stolen.push(JSON.stringify(data));
function script(src) {
  return new Promise((done) => {
    const s = document.createElement("script");
    s.src = src;
    s.onload = () => done("load");
    s.onerror = () => done("error");
    document.head.appendChild(s);
  });
}
async function attempt(name, f) {
  try { window.result[name] = await f(); } catch (e) { window.result[name] = "error: " + e; }
}
(async () => {
  await attempt("read", async () => (await fetch(api + "/api/v1/clients")).text());
  await attempt("kick", async () =>
    (await fetch(api + "/api/v1/clients/" + q.get("kick"), {method: "DELETE"})).status);
  await attempt("post", async () => (await fetch(api + "/api/v1/clients/" + q.get("post"),
    {method: "POST", mode: "no-cors", body: "x"})).type);
  await attempt("jsonp_read", () => script(api + "/api/v1/clients?callback=steal"));
  await attempt("jsonp_kick", () =>
    script(api + "/api/v1/clients/" + q.get("jsonp") + "?callback=steal&method=DELETE"));
  window.result.done = true;
})();
</script><p>cats</p>
"""


class AttackSite:
    """A plain HTTP server on another port of 127.0.0.1 serving ATTACK_PAGE at /."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = ATTACK_PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium not installed (scripts/install-systools.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (requirements-dev.txt)")
    profile = tempfile.mkdtemp(prefix="srsedge-chromium-")
    site = AttackSite()
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield context, site
        finally:
            context.close()
            site.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.parametrize("api", ["open_api", "closed_api", "jsonp_api"])
def test_attacking_page_in_chromium_neither_reads_nor_kicks(api, request, chromium, victims):
    """With `jsonp on` a script tag reads (what SRS's console needs, documented), nothing else."""
    node = request.getfixturevalue(api)
    context, site = chromium
    targets = {vector: victims(node, f"v-{vector}") for vector in ("kick", "post", "jsonp")}
    query = "&".join(f"{vector}={v.id}" for vector, v in targets.items())
    page = context.new_page()
    try:
        page.goto(f"{site.base}/?api=http://127.0.0.1:{node.api}&{query}", wait_until="load")
        page.wait_for_function("() => window.result && window.result.done", timeout=15000)
        result = page.evaluate("() => window.result")
    finally:
        page.close()
    assert result["read"].startswith("error:"), f"the page read the API: {result['read'][:200]}"
    assert str(result["kick"]).startswith("error:"), result["kick"]
    if api == "jsonp_api":
        assert len(result["stolen"]) == 1 and targets["kick"].id in result["stolen"][0], result
    else:
        assert result["stolen"] == [], "a script tag read the API (JSONP)"
    still = {vector: v.connected() for vector, v in targets.items()}
    assert all(still.values()), f"kicked by the attacking page: {still}, page saw {result}"
