"""What a user reads in the log on ordinary events: each signal named as itself, a player that
leaves (even with a TCP reset) is a normal close, a kick or a quit logs its reason and no socket
error, SIGUSR1 with console logging says there is no file, a pid file conflict is printed once.

Rules: real server processes (server_factory) on free ports; the API is the oracle for what it
knows (the client ids); log text is what these tests are about, so they read it.
"""
import json
import signal
import socket
import struct
import subprocess
import urllib.request

from tests.conftest import ORIGIN_CONF, PYTHON, ROOT, free_port, wait_for
from tests.rtmpclient import RtmpTestClient

SOCKET_NOISE = ("Errno 9", "closed in another greenlet", "Connection reset by peer", "Errno 104")


def api_conf(api_port):
    return ORIGIN_CONF.replace("srs_log_tank console;",
                               f"srs_log_tank console;\nhttp_api {{ enabled on; listen 127.0.0.1:{api_port}; }}")


def api(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def playing(srv, media_file, publisher_factory):
    publisher_factory(srv.url(), media_file)
    player = RtmpTestClient(srv.url())
    assert player.play() and player.pump_until(lambda: len(player.media) > 10, 10)
    return player


def noise(log):
    return [line for line in log.splitlines() if any(n in line for n in SOCKET_NOISE)]


def test_sigint_is_logged_as_sigint(server_factory):
    srv = server_factory(ORIGIN_CONF)
    srv.send_signal(signal.SIGINT)
    assert srv.proc.wait(10) == 0
    assert "SIGINT: fast quit" in srv.log_text() and "SIGTERM" not in srv.log_text()


def test_quit_with_players_logs_no_socket_error(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF)
    player = playing(srv, media_file, publisher_factory)
    srv.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0
    player.close()
    log = srv.log_text()
    assert "SIGTERM: fast quit" in log and "closing" in log
    assert noise(log) == []


def test_kick_logs_its_reason_and_no_socket_error(server_factory, media_file, publisher_factory):
    port = free_port()
    srv = server_factory(api_conf(port))
    player = playing(srv, media_file, publisher_factory)
    ids = [c["id"] for c in api(port, "/api/v1/clients")["clients"] if not c["publish"]]
    assert len(ids) == 1
    assert api(port, f"/api/v1/clients/{ids[0]}", "DELETE")["code"] == 0
    assert player.pump_until(lambda: player.closed, 10)
    assert wait_for(lambda: ids[0] not in {c["id"] for c in api(port, "/api/v1/clients")["clients"]}, 10)
    log = srv.log_text()
    assert log.count("kicked by HTTP API") == 1
    assert noise(log) == []


def test_player_reset_is_a_normal_close(server_factory, media_file, publisher_factory):
    srv = server_factory(ORIGIN_CONF)
    player = playing(srv, media_file, publisher_factory)
    # SO_LINGER 0: close() sends a TCP reset, as players that close with unread data do
    player.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    player.sock.close()
    assert wait_for(lambda: "closed the connection" in srv.log_text(), 10)
    log = srv.log_text()
    assert noise(log) == [] and "[Warn]" not in log and "[Error]" not in log


def test_sigusr1_with_console_logging_says_no_file(server_factory):
    srv = server_factory(ORIGIN_CONF)
    srv.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: "SIGUSR1" in srv.log_text(), 15)
    assert "no log file to reopen" in srv.log_text() and "reopened" not in srv.log_text()


def test_pid_file_conflict_printed_once(server_factory):
    first = server_factory(ORIGIN_CONF)
    pid_file = first.dir / "srs.pid"
    assert wait_for(pid_file.exists, 15)
    conf = first.dir / "second.conf"
    conf.write_text(f"pid {pid_file};\nlisten {free_port()};\nsrs_log_tank console;\n"
                    "vhost __defaultVhost__ { }\n")
    res = subprocess.run([PYTHON, "srsedge.py", "-c", str(conf)], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    out = res.stdout + res.stderr
    lines = [line for line in out.splitlines() if str(pid_file) in line]
    assert len(lines) == 1, out
    assert first.alive() and pid_file.read_text().strip() == str(first.proc.pid)
