"""Signals as SRS: SIGHUP reload, SIGQUIT graceful quit, SIGTERM fast quit, SIGUSR1 logrotate."""
import os
import signal
import socket
import subprocess
import time

from tests.conftest import ORIGIN_CONF, PYTHON, ROOT, free_port, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient, read_all
from tests.test_edge import edge_conf, plays_on


def test_sighup_new_origin_list_players_stay(server_factory, media_file, publisher_factory):
    a = server_factory(ORIGIN_CONF, name="a")
    b = server_factory(ORIGIN_CONF, name="b")
    edge = server_factory(edge_conf(a), name="edge")
    publisher_factory(a.url(), media_file)
    publisher_factory(b.url(), media_file)
    time.sleep(1.5)
    viewers = [RtmpTestClient(edge.url()) for _ in range(3)]
    for v in viewers:
        assert v.play()
    read_all(viewers, 1.0)
    edge.conf.write_text(edge.conf.read_text().replace(f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"))
    edge.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload ok" in edge.log_text(), 15)
    before = [len(v.media) for v in viewers]
    read_all(viewers, 3.0)
    for v, n in zip(viewers, before):
        assert not v.closed and len(v.media) > n + 30
    assert plays_on(b) == 1                 # the link moved to the new list


def test_sighup_broken_config_keeps_old(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF)
    publisher_factory(srv.url(), media_file)
    good = srv.conf.read_text()
    srv.conf.write_text(good.replace("vhost __defaultVhost__ { }", "vhost __defaultVhost__ { bogus on; }"))
    srv.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload ignored" in srv.log_text(), 15)
    assert wait_for(lambda: "vhost.bogus" in srv.log_text(), 15)
    v = RtmpTestClient(srv.url())
    assert v.play() and v.pump_until(lambda: len(v.media) > 10, 15)


def test_sighup_mode_change_refused(server_factory):
    origin = server_factory(ORIGIN_CONF, name="origin")
    srv = server_factory(ORIGIN_CONF, name="srv")
    srv.conf.write_text(edge_conf(origin).replace("{port}", str(srv.port)))
    srv.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "needs a restart" in srv.log_text(), 15)


def test_sighup_adds_listen_port(server_factory):
    srv = server_factory(ORIGIN_CONF)
    extra = free_port()
    srv.conf.write_text(srv.conf.read_text().replace(f"listen {srv.port};",
                                                     f"listen {srv.port} {extra};"))
    srv.send_signal(signal.SIGHUP)
    wait_port(extra)


def test_sigquit_drains_then_exits(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF.replace("listen {port};",
                                             "listen {port};\ngrace_start_wait 500;\ngrace_final_wait 500;"))
    publisher_factory(srv.url(), media_file)
    v = RtmpTestClient(srv.url())
    assert v.play()
    srv.send_signal(signal.SIGQUIT)
    time.sleep(0.3)
    with socket.socket() as s:              # no longer accepting
        assert s.connect_ex(("127.0.0.1", srv.port)) != 0
    assert srv.proc.wait(10) == 0
    assert wait_for(lambda: "graceful quit" in srv.log_text(), 15)


def test_sigterm_fast_quit_removes_pid(server_factory):
    srv = server_factory(ORIGIN_CONF)
    pid_file = srv.dir / "srs.pid"
    assert wait_for(pid_file.exists, 15)
    srv.send_signal(signal.SIGTERM)
    assert srv.proc.wait(5) == 0
    assert not pid_file.exists()


def test_sigusr1_reopens_log_file(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF.replace("srs_log_tank console;",
                                             "srs_log_tank file;\nsrs_log_file {dir}/x.log;"))
    log = srv.dir / "x.log"
    assert wait_for(lambda: log.exists() and "listening" in log.read_text(), 15)
    os.rename(log, srv.dir / "x.log.1")
    srv.send_signal(signal.SIGUSR1)
    assert wait_for(log.exists, 15)
    publisher_factory(srv.url(), media_file)
    assert wait_for(lambda: "publish" in log.read_text(), 10)


def test_daemon_on_detaches(tmp_path):
    port = free_port()
    conf = tmp_path / "d.conf"
    conf.write_text(f"listen {port};\ndaemon on;\npid {tmp_path}/d.pid;\nsrs_log_tank file;\n"
                    f"srs_log_file {tmp_path}/d.log;\nvhost __defaultVhost__ {{ }}\n")
    res = subprocess.run([PYTHON, "srsedge.py", "-c", str(conf)], cwd=ROOT, timeout=10)
    assert res.returncode == 0                       # the foreground process returned
    wait_port(port)
    pid = int((tmp_path / "d.pid").read_text())
    try:
        assert pid != os.getpid()
        os.kill(pid, 0)
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not (tmp_path / "d.pid").exists(), 15)
