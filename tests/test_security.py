"""security { allow/deny publish/play ... } as SRS: unit table plus a real-process check."""
import time
from types import SimpleNamespace

import pytest

from lib.server.core.security import check
from tests.conftest import ORIGIN_CONF, wait_for
from tests.rtmpclient import RtmpTestClient


def sec(*rules, enabled=True):
    return SimpleNamespace(enabled=enabled, rules=list(rules))


@pytest.mark.parametrize("rules, action, ip, allowed", [
    ((), "play", "1.2.3.4", False),                                   # enabled: allow required
    ((("allow", "play", "all"),), "play", "1.2.3.4", True),
    ((("allow", "play", "all"),), "publish", "1.2.3.4", False),
    ((("allow", "publish", "127.0.0.1"),), "publish", "127.0.0.1", True),
    ((("allow", "publish", "10.0.0.0/8"),), "publish", "10.9.8.7", True),
    ((("allow", "publish", "10.0.0.0/8"),), "publish", "11.0.0.1", False),
    ((("allow", "play", "all"), ("deny", "play", "192.168.1.0/24")), "play", "192.168.1.5", False),
    ((("allow", "play", "all"), ("deny", "play", "192.168.1.0/24")), "play", "192.168.2.5", True),
    ((("allow", "play", "::1"),), "play", "::1", True),
    ((("allow", "play", "127.0.0.0/8"),), "play", "::ffff:127.0.0.1", True),
    ((("allow", "play", "all"), ("deny", "play", "all")), "play", "8.8.8.8", False),
])
def test_rules(rules, action, ip, allowed):
    ok, reason = check(sec(*rules), action, ip)
    assert ok is allowed
    assert ok or action in reason


def test_disabled_allows_everything():
    assert check(sec(("deny", "play", "all"), enabled=False), "play", "1.1.1.1") == (True, "")


def test_security_on_a_real_server(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF.replace("vhost __defaultVhost__ { }", """
vhost __defaultVhost__ {
    security {
        enabled on;
        allow publish 127.0.0.1;
        allow play all;
        deny play 127.0.0.1;
    }
}"""))
    pub = publisher_factory(srv.url(), media_file)
    time.sleep(1)
    assert pub.alive()
    v = RtmpTestClient(srv.url())
    v.play()
    assert v.pump_until(lambda: v.closed, 15)
    assert "NetStream.Play.StreamNotFound" in v.statuses
    assert wait_for(lambda: "denied by 'deny play 127.0.0.1'" in srv.log_text(), 15)
