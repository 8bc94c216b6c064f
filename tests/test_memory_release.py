"""Memory a load leaves behind (issue 20, point 8): after the publishers of many streams leave,
the server gives the freed memory back to the system (RSS returns near its baseline) instead of
keeping its peak for good. docs/performance.md "Where the memory of a process storm stays"."""
import json
import urllib.request

from tests.conftest import free_port, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient

CONF = """
listen {port};
srs_log_tank console;
srs_log_level warn;
http_api { enabled on; listen API; }
vhost __defaultVhost__ { }
"""
STREAMS = 8
FRAMES = 2000                   # one GOP per stream, 3 KB frames (~600 kbit/s at 25 fps)


def runtime(api):
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/v1/debug/runtime", timeout=10) as r:
        return json.load(r)


def test_rss_returns_near_baseline_after_many_streams_leave(server_factory):
    api = free_port()
    srv = server_factory(CONF.replace("API", str(api)))
    wait_port(api)
    base = runtime(api)["rss_kb"]
    pubs = []
    for i in range(STREAMS):
        c = RtmpTestClient(srv.url(f"live/m{i}"))
        assert c.publish()
        pubs.append(c)
    avc_header = bytes([0x17, 0, 0, 0, 0]) + bytes(40)
    for c in pubs:
        c.send_media(9, 0, avc_header)
        c.send_media(9, 0, bytes([0x17, 1, 0, 0, 0]) + bytes(3000))
    for n in range(1, FRAMES):                  # interleaved, as many publishers are
        for i, c in enumerate(pubs):
            c.send_media(9, n * 40, bytes([0x27, 1, 0, 0, 0, i, n & 255]) + bytes(2993))
    grown = wait_for(lambda: runtime(api)["rss_kb"] - base > 30_000, timeout=30)
    assert grown, (base, runtime(api))
    peak = runtime(api)["rss_kb"]
    for c in pubs:
        c.close()
    assert wait_for(lambda: runtime(api)["sources"] == 0, timeout=20)
    # most of what the streams took is given back (not all: the interpreter keeps some)
    released = wait_for(lambda: runtime(api)["rss_kb"] - base < (peak - base) / 3, timeout=20)
    assert released, (base, peak, runtime(api))
    assert runtime(api)["malloc_trims"] >= 1
