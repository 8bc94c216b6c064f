"""The cap on child processes (issue 20, point 8): a global and a per-vhost `max_processes`
bound what publishers can make the origin spawn (transcode, exec); the API reports count, cap
and refusals; the log says it once, not per refusal."""
import json
import urllib.request

from tests.conftest import free_port, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient

CAP_CONF = """
listen {port};
srs_log_tank console;
max_processes 3;
http_api { enabled on; listen API; }
vhost __defaultVhost__ {
    exec { enabled on; publish sleep 300; publish sleep 301; }
}
vhost capped.test {
    max_processes 1;
    exec { enabled on; publish sleep 302; publish sleep 303; }
}
"""


def processes(api):
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/v1/processes", timeout=5) as r:
        return json.load(r)


def test_global_and_vhost_caps_refuse_spawns_report_them_and_log_once(server_factory):
    api = free_port()
    srv = server_factory(CAP_CONF.replace("API", str(api)))
    wait_port(api)
    clients = []

    def publish(path):
        c = RtmpTestClient(srv.url(path))
        c.publish()
        clients.append(c)

    publish("live?vhost=capped.test/a")         # 2 exec lines, vhost cap 1: 1 runs
    assert wait_for(lambda: processes(api)["cap"]["vhosts"].get("capped.test", {})
                    .get("refused") == 1, timeout=10), processes(api)
    publish("live/a")                           # 2 more: the global cap (3) is reached
    publish("live/b")                           # refused: global cap
    for i in range(5):                          # a storm of refusals
        publish(f"live/storm{i}")
    want = {"count": 3, "max": 3, "refused": 1 + 2 + 10}
    assert wait_for(lambda: {k: processes(api)["cap"][k] for k in want} == want, timeout=10), \
        processes(api)
    body = processes(api)
    assert body["total"] == 3 and len(body["processes"]) == 3
    assert body["cap"]["vhosts"]["capped.test"] == {"count": 1, "max": 1, "refused": 1}
    assert body["cap"]["vhosts"]["__defaultVhost__"] == {"count": 2, "max": 0, "refused": 12}
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert "srsedge_process_cap 3.0" in metrics
    assert 'srsedge_process_refusals_total{vhost="capped.test"} 1.0' in metrics
    log = srv.log_text()
    assert log.count("process cap reached") == 2, log       # once per cap, not per refusal
    assert "max_processes 3 (global)" in log and "max_processes 1 (vhost capped.test)" in log
    for c in clients:
        c.close()
    assert wait_for(lambda: processes(api)["cap"]["count"] == 0, timeout=20), processes(api)
    publish("live/c")                           # room again
    assert wait_for(lambda: processes(api)["total"] == 2, timeout=10), processes(api)
