"""The console's cluster panel (issue 21, point 6) in Chromium.

Real processes: a redis-server, two origins sharing it as their directory, each with http_api and
http_server (the console is served at /console/), ffmpeg publishing. The panel must list both
origins with what each owns, the stream's owner in the streams table, and follow the stream
when its encoder moves to the other origin. The oracles are the HTTP API and Redis (who owns
what), never the console's own code. Text from the API is shown as text: a member registered
by a heartbeat with HTML in its name must not become markup. Without a directory the panel says
so in one line. No page error and no console error in any of these.
"""
import json

import pytest
import requests

from tests.conftest import need_tool, wait_for
from tests.redis_server import RedisServer
from tests.test_browser import Node, open_page
from tests.test_cluster_directory import KEY, origin_id
from tests.test_cross_site import chromium  # noqa: F401 (fixture)

ORIGIN = """
listen 127.0.0.1:{port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:{api}; crossdomain on; }
http_server { enabled on; listen 127.0.0.1:{http}; dir {dir}/www; }
vhost __defaultVhost__ {
    cluster { directory {redis}; directory_ttl 3; }
}
"""
PLAIN = """
listen 127.0.0.1:{port};
srs_log_tank console;
http_api { enabled on; listen 127.0.0.1:{api}; crossdomain on; }
http_server { enabled on; listen 127.0.0.1:{http}; dir {dir}/www; }
vhost __defaultVhost__ { }
"""
HOSTILE = "<img src=x onerror=window.pwned=1>"


@pytest.fixture(scope="module")
def origins(tmp_path_factory):
    need_tool("ffmpeg")
    tmp = tmp_path_factory.mktemp("console_cluster")
    store = RedisServer(tmp).start()
    nodes = []
    try:
        for name in ("a", "b"):
            nodes.append(Node(tmp, name, ORIGIN, redis=store.url))
            nodes[-1].id = origin_id(store, nodes[-1].proc)
        yield store, nodes
    finally:
        for node in nodes:
            node.proc.stop()
        store.stop(kill=True)


def watch_errors(page):
    """Console errors too (page.errors has the uncaught exceptions)."""
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(
        f"{m.text} {m.location.get('url', '')}"))
    return page


def open_console(browser, node):
    page = watch_errors(open_page(browser, node.page("/console/")))
    page.wait_for_selector("#status:has-text('live')", timeout=15000)
    return page


def no_errors(page):
    assert not page.errors, page.errors
    assert not page.console_errors, page.console_errors


def origin_rows(page):
    """{origin id: {cell class: text}} of the cluster panel's origins table."""
    return page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('#cluster tr[data-origin]')].map((tr) => [
            tr.dataset.origin,
            Object.fromEntries([...tr.cells].map((td) => [td.classList[0], td.innerText.trim()]))]))""")


def owner_cell(page, stream):
    loc = page.locator(f"#streams tr[data-stream='{stream}'] td.owner")
    return loc.inner_text().strip() if loc.count() else None


def api_directory(node):
    (directory,) = node.api_get("/api/v1/clusters")["data"]["directories"]
    return directory


def owned_on_page(page):
    rows = origin_rows(page)
    return {oid: (row.get("owned"), row.get("owned-streams")) for oid, row in rows.items()}


def test_cluster_panel_lists_origins_and_follows_a_move(origins, chromium,  # noqa: F811
                                                        publisher_factory, media_file):
    store, (a, b) = origins
    browser, _ = chromium
    redis = store.client()
    pub = publisher_factory(a.proc.url("live/moving"), media_file)
    assert wait_for(lambda: redis.get(KEY.format("moving")) == a.id, 10)
    page = open_console(browser, a)
    try:
        # both origins, this server named, A owning the stream (the API and Redis agree)
        assert wait_for(lambda: owned_on_page(page) == {a.id: ("1", "live/moving"),
                                                         b.id: ("0", "")}, 15), origin_rows(page)
        directory = api_directory(a)
        assert directory["self"] == a.id and directory["role"] == "origin"
        rows = origin_rows(page)
        for origin in directory["origins"]:
            row = rows[origin["id"]]
            assert row["kind"] == "srsedge"
            assert (row["rtmp"], row["http"], row["api"]) == (
                origin["rtmp"], origin["http"], origin["api"])
        assert rows[a.id]["rtmp"].endswith(f":{a.port}") and rows[b.id]["api"].endswith(f":{b.api}")
        # load comes with each membership renewal (every directory_ttl / 3)
        assert wait_for(lambda: [origin_rows(page)[o.id]["publishers"] for o in (a, b)]
                        == ["1", "0"], 10), origin_rows(page)
        state = page.inner_text("#cluster .directory-state")
        assert page.inner_text("#cluster .directory-state .pill") == "reachable", state
        assert f"this server {a.id} (origin)" in state, state
        assert wait_for(lambda: owner_cell(page, "live/moving") == f"{a.id} (this server)", 10), \
            owner_cell(page, "live/moving")

        # the encoder moves to B: the panel follows, the page logs the move
        pub.stop()
        assert wait_for(lambda: redis.get(KEY.format("moving")) is None, 10)
        publisher_factory(b.proc.url("live/moving"), media_file)
        assert wait_for(lambda: redis.get(KEY.format("moving")) == b.id, 10)
        assert wait_for(lambda: owned_on_page(page) == {a.id: ("0", ""),
                                                         b.id: ("1", "live/moving")}, 15), \
            origin_rows(page)
        assert wait_for(lambda: any(f"{a.id} → {b.id}" in m and "live/moving" in m
                                    for m in page.locator("#cluster .moves li").all_inner_texts()),
                        10), page.inner_text("#cluster")
        # the moves counter is the API's (claim by A, release, claim by B at least)
        assert wait_for(lambda: page.inner_text("#cluster .moves-seen").strip()
                        == str(api_directory(a)["moves_seen"]), 10)
        assert api_directory(a)["moves_seen"] >= 3
        no_errors(page)

        # B's own console: the stream's owner is B
        page_b = open_console(browser, b)
        try:
            assert wait_for(lambda: owner_cell(page_b, "live/moving") == f"{b.id} (this server)",
                            10), owner_cell(page_b, "live/moving")
            no_errors(page_b)
        finally:
            page_b.close()
    finally:
        page.close()


def test_names_from_the_directory_are_shown_as_text(origins, chromium):  # noqa: F811
    """An SRS heartbeat whose server name and ip are HTML: shown literally, nothing runs."""
    store, (a, b) = origins
    browser, _ = chromium
    body = {"ip": "<b>bold</b>", "server": HOSTILE, "service": "s", "pid": "1", "rtmp": ["1935"]}
    answer = requests.post(f"http://127.0.0.1:{a.api}/api/v1/srs/register", data=json.dumps(body),
                           timeout=5)
    assert answer.json()["id"] == f"srs-{HOSTILE}"
    page = open_console(browser, a)
    try:
        assert wait_for(lambda: f"srs-{HOSTILE}" in origin_rows(page), 15), origin_rows(page)
        row = origin_rows(page)[f"srs-{HOSTILE}"]
        assert row["id"] == f"srs-{HOSTILE}" and row["kind"] == "srs"
        assert row["rtmp"] == "<b>bold</b>:1935"
        assert page.locator("#cluster img, #cluster b:has-text('bold')").count() == 0
        assert page.evaluate("() => window.pwned") is None
        no_errors(page)
    finally:
        page.close()


def test_without_a_directory_the_panel_says_so(tmp_path, chromium):  # noqa: F811
    browser, _ = chromium
    node = Node(tmp_path, "plain", PLAIN)
    try:
        assert node.api_get("/api/v1/clusters")["data"]["directories"] == []
        page = open_console(browser, node)
        try:
            page.wait_for_selector("#cluster-none:not(.hidden)", timeout=10000)
            assert "no cluster directory" in page.inner_text("#cluster").lower()
            assert page.locator("#cluster tr[data-origin]").count() == 0
            assert not page.locator("#streams th.owner").is_visible()
            no_errors(page)
        finally:
            page.close()
    finally:
        node.proc.stop()
