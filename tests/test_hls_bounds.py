"""HLS memory per stream name is bounded (lib/server/hls/sink.py, issue 14 defect 9).

Publishing is open by default and every name published on an HLS vhost used to keep its sink
(~3.8 KB) forever with `hls_dispose 0`. In-process: 300 names through a real Source registry
and the plugin (bounds lowered, so eviction and the sequence floor are exercised); black-box:
300 short publishes with our own RTMP client to a real server, counted by its runtime API.
"""
import json
import urllib.request

import gevent

from lib.media import flv
from lib.server.hls import sink as hls_sink
from tests.conftest import free_port, wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_hls_live import Harness, media  # noqa: F401 (fixture)

NAMES = 300


def first_tags(media_bytes, until_ms):
    return [t for t in flv.iter_tags(media_bytes) if t[1] < until_ms]


def publish_once(h, stream, tags):
    src = h.source(stream=stream)
    owner = object()
    src.on_publish(owner)
    for tag_type, ts, payload in tags:
        src.on_media(tag_type, ts, payload)
    src.on_unpublish(owner)
    gevent.sleep(0)


def test_many_names_keep_bounded_state_and_never_reuse_numbers(tmp_path, media, monkeypatch):
    monkeypatch.setattr(hls_sink, "MAX_IDLE_SINKS", 8, raising=False)
    monkeypatch.setattr(hls_sink, "MAX_REMEMBERED", 50, raising=False)
    h = Harness(tmp_path, hls_dispose=0)     # the worst case: nothing is ever disposed
    tags = first_tags(media, 2100)           # one 2 s segment and the start of the next
    for i in range(NAMES):
        publish_once(h, f"s{i}", tags)
        if i % 20 == 19:
            h.settle()
    h.settle()
    assert len(h.registry.sources) == 0
    assert len(h.plugin.sinks) <= 8, len(h.plugin.sinks)
    assert len(h.plugin.next_seq) <= 50, len(h.plugin.next_seq)
    # s0 was forgotten and pushed out of the remembered numbers: it goes on above them
    publish_once(h, "s0", tags)
    h.settle()
    text = (h.dir / "live" / "s0.m3u8").read_text()
    uris = [line for line in text.splitlines() if line.endswith(".ts")]
    assert uris and all(int(u[len("s0-"):-len(".ts")]) >= 2 for u in uris), text


def runtime(api_port):
    """The server's cheap runtime counts ({} while the API does not answer yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v1/debug/runtime",
                                    timeout=10) as r:
            return json.load(r)
    except OSError:
        return {}


def test_many_published_names_on_a_real_server(server_factory, media_file, tmp_path):
    api_port = free_port()
    srv = server_factory(f"""
listen {{port}};
srs_log_tank file;
srs_log_file {{dir}}/srs.log;
http_api {{ enabled on; listen {api_port}; }}
vhost __defaultVhost__ {{ hls {{ enabled on; hls_path {tmp_path}/hls; hls_fragment 1; hls_dispose 0; }} }}
""")
    assert wait_for(lambda: runtime(api_port).get("code") == 0, 10)
    tags = first_tags(media_file.read_bytes(), 1100)
    for i in range(NAMES):
        c = RtmpTestClient(srv.url(f"live/n{i}"), timeout=10)
        assert c.publish(), i
        for tag_type, ts, payload in tags:
            c.session.send_media(tag_type, ts, payload)
        c.sock.sendall(c.session.data_to_send())
        c.close()
    assert wait_for(lambda: runtime(api_port).get("sources") == 0, 20), runtime(api_port)
    assert wait_for(lambda: runtime(api_port).get("hls_sinks", NAMES) <= hls_sink.MAX_IDLE_SINKS, 20), \
        runtime(api_port)
    now = runtime(api_port)
    assert now["hls_remembered"] <= NAMES, now
    assert (tmp_path / "hls" / "live" / f"n{NAMES - 1}.m3u8").exists()
    assert srv.alive()
