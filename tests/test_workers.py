"""`workers N`: processes sharing the RTMP port, still one upstream link per stream."""
import re
import time

from tests.conftest import ORIGIN_CONF, wait_for
from tests.rtmpclient import RtmpTestClient, read_all
from tests.test_edge import edge_conf, plays_on


def serving_pids(log, stream="livestream"):
    return set(re.findall(rf"\]\[Trace\]\[(\d+)\]\[\w+\] play __defaultVhost__/live/{stream} to", log))


def test_edge_workers_share_port_one_upstream_link(server_factory, media_file, publisher_factory):
    origin = server_factory(ORIGIN_CONF, name="origin")
    edge = server_factory(edge_conf(origin).replace("listen {port};", "listen {port};\nworkers 2;"),
                          name="edge")
    assert wait_for(lambda: "worker 1 serving" in edge.log_text(), 10)
    publisher_factory(origin.url(), media_file)
    time.sleep(1)
    viewers = [RtmpTestClient(edge.url()) for _ in range(12)]
    for v in viewers:
        assert v.play()
    read_all(viewers, 2.5)
    for v in viewers:
        assert sum(1 for t, _, _ in v.media if t == 9) > 20
    assert plays_on(origin) == 1                        # one link for the whole machine
    assert len(serving_pids(edge.log_text())) == 2      # the kernel spread the players


def test_origin_workers_publish_lands_anywhere(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF.replace("listen {port};", "listen {port};\nworkers 2;"))
    assert wait_for(lambda: "worker 1 serving" in srv.log_text(), 10)
    publisher_factory(srv.url(), media_file)
    time.sleep(1.5)
    viewers = [RtmpTestClient(srv.url()) for _ in range(8)]
    for v in viewers:
        assert v.play()
    read_all(viewers, 2.5)
    for v in viewers:
        assert sum(1 for t, _, _ in v.media if t == 9) > 20
    srv.stop()
    assert not re.search(r"\[Error\]|Traceback", srv.log_text())
