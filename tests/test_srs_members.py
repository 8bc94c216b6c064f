"""lib/server/cluster/srs_members.py: what a flood of SRS heartbeats (anyone who can reach the
API) may make srsedge do, with a fake store and a fake member API."""
import gevent
from gevent.event import Event

from lib.server.cluster import srs_members
from lib.server.cluster.srs_members import SrsMembers


class _Store:
    def __init__(self):
        self.registered = []

    def register(self, record, ttl):
        self.registered.append(record)

    def claim(self, member, keys, ttl):
        return {k: member for k in keys}

    def release(self, member, key):
        pass


class _Log:
    def warn(self, line):
        pass


class _Driver:
    def __init__(self):
        self.store, self.log = _Store(), _Log()


def record(member):
    return {"id": member, "kind": "srs", "rtmp": "10.0.0.1:1935", "api": "10.0.0.1:1985"}


def test_a_heartbeat_flood_reads_one_member_api_at_a_time_and_few_in_all(monkeypatch):
    members = SrsMembers(_Driver())
    release, reads = Event(), []

    def slow_streams(rec):
        reads.append(rec["id"])
        release.wait(5)
        return {"__defaultVhost__/live/s"}
    monkeypatch.setattr(members, "_streams", slow_streams)
    flood = [gevent.spawn(members.heartbeat, record("srs-a")) for _ in range(50)]
    flood += [gevent.spawn(members.heartbeat, record(f"srs-{i}")) for i in range(50)]
    gevent.sleep(0.05)
    assert reads.count("srs-a") == 1
    assert len(reads) == srs_members.MAX_FETCHES
    release.set()
    gevent.joinall(flood, timeout=5)
    assert all(g.successful() for g in flood)
    # a heartbeat whose read was skipped keeps the member's last load, not an idle 0
    monkeypatch.setattr(members, "_streams", lambda rec: None)
    assert members.heartbeat(record("srs-a"))["load"]["publishers"] == 1


def test_a_huge_answer_is_not_read(monkeypatch):
    monkeypatch.setattr(srs_members, "MAX_ANSWER", 1000)

    class _Raw:
        def read(self, n, decode_content=True):
            return b"[" * n

    class _Response:
        raw = _Raw()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False
    monkeypatch.setattr(srs_members.requests, "get", lambda *a, **kw: _Response())
    assert SrsMembers(_Driver())._streams(record("srs-big")) is None
