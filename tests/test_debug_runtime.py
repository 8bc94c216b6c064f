"""/api/v1/debug/runtime (lib/server/api/routes.py): cheap by default, the gc walk only with
?gc=1. In-process: a Server and its ApiServer (not listening), gc's walk replaced by a trap."""
import gc

import gevent
import pytest

from lib.config import parse_text
from lib.server.api import routes
from lib.server.core.app import Server
from lib.server.process.log import Logger

CHEAP = {"watchers", "fds", "sockets", "sources", "clients", "connections", "rss_kb"}


@pytest.fixture
def api(tmp_path):
    config = parse_text(f"srs_log_tank file; srs_log_file {tmp_path}/srs.log;\n"
                        "http_api { enabled on; }\nvhost __defaultVhost__ { hls { enabled on; "
                        f"hls_path {tmp_path}; }} }}")
    gevent.get_hub()                  # the hub greenlet: at least one greenlet is alive
    server = Server(config, Logger(config.log_tank, config.log_level, config.log_file))
    return routes.ApiServer(server)


def trap(*args):
    raise AssertionError("the gc walk ran")


def test_default_call_does_not_walk_the_heap(api, monkeypatch):
    monkeypatch.setattr(routes.gc, "get_objects", trap)
    monkeypatch.setattr(routes.gc, "collect", trap)
    data = api.debug("GET", "runtime", {})
    assert data["code"] == 0
    assert CHEAP <= set(data) and "greenlets" not in data
    assert data["fds"] >= 3 and data["sources"] == 0


def test_gc_walk_is_opt_in(api, monkeypatch):
    calls = []
    real = gc.get_objects
    monkeypatch.setattr(routes.gc, "get_objects", lambda: calls.append(1) or real())
    data = api.debug("GET", "runtime", {"gc": ["1"]})
    assert calls == [1]
    assert data["greenlets"] >= 1 and data["greenlet_objects"] >= data["greenlets"]
    assert CHEAP <= set(data)
