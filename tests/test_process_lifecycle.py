"""A supervised child process with real processes: stop() at the moment the driver is inside
Popen (gevent yields until the child has exec'd), or the server's death while a child is
between fork and exec, must leave no child behind (issue 20, point 7)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gevent
import pytest

from lib.cluster.child import KILL_AFTER
from lib.server.ffmpeg import process as process_module
from lib.server.ffmpeg.process import ProcessRegistry, Supervised
from lib.server.process.log import Logger


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:                                   # a zombie of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(cond, deadline, what):
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timeout: {what}")
        gevent.sleep(0.01)


@pytest.fixture
def slow_exec(tmp_path, monkeypatch):
    """Children pause between fork and exec (in the preexec hook, while the parent greenlet
    waits inside Popen) after writing their pid (the same after exec) to `forked`."""
    forked = tmp_path / "forked"
    real = process_module.die_with_parent

    def preexec():
        real()
        fd = os.open(str(forked), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(fd, b"%d\n" % os.getpid())
        os.close(fd)
        time.sleep(1.0)

    monkeypatch.setattr(process_module, "die_with_parent", preexec)
    return forked


def _supervised():
    log = Logger("console", "error", None).context()
    return Supervised(ProcessRegistry(), "exec", "t", ["sleep", "30"], log)


def _child_pids(forked):
    """The pids written so far (complete lines only)."""
    text = forked.read_text() if forked.exists() else ""
    return [int(x) for x in text.split("\n")[:-1]]


def test_stop_while_first_popen_is_in_flight_leaves_no_child(slow_exec):
    proc = _supervised()
    proc.start()
    _wait(lambda: _child_pids(slow_exec), 5, "the child forked")    # the driver is in Popen
    proc.stop()
    (pid,) = _child_pids(slow_exec)
    _wait(lambda: not _alive(pid), KILL_AFTER + 3, f"child {pid} ended")
    assert proc.registry.describe() == []


def test_stop_while_restart_popen_is_in_flight_leaves_no_child(slow_exec):
    proc = _supervised()
    proc.start()
    _wait(lambda: proc.describe()["pid"] is not None, 5, "first child up")
    (first,) = _child_pids(slow_exec)
    os.kill(first, signal.SIGKILL)                       # crash: restarted after 1 s
    _wait(lambda: len(_child_pids(slow_exec)) == 2, 10, "the restart forked")
    proc.stop()
    second = _child_pids(slow_exec)[1]
    _wait(lambda: not _alive(second), KILL_AFTER + 3, f"child {second} ended")
    _wait(lambda: proc.machine.state == "stopped", 5, "the driver ended")
    assert proc.registry.describe() == []


def test_command_that_cannot_start_backs_off_and_stop_frees_its_slot():
    registry = ProcessRegistry(limit=4)
    assert registry.cap.admit("v", 0, 0.0) == (True, None)
    log = Logger("console", "error", None).context()
    proc = Supervised(registry, "exec", "t", ["/nonexistent/cmd"], log, vhost="v").start()
    _wait(lambda: proc.machine.state == "backoff", 5, "spawn failed, backing off")
    assert proc.describe()["pid"] is None and registry.cap.count == 1
    proc.stop()
    _wait(lambda: registry.cap.count == 0, 5, "slot released")
    assert proc.machine.state == "stopped" and registry.describe() == []


SERVER_DIES_DURING_SPAWN = """
from gevent import monkey
monkey.patch_all()
import os, signal, sys, time
import gevent
sys.path.insert(0, {root!r})
from lib.server.ffmpeg import process as pm
from lib.server.process.log import Logger
gevent.signal_handler(signal.SIGTERM, lambda: None)          # as srsedge.py installs
real = pm.die_with_parent
def preexec():
    real()
    with open({forked!r}, "a") as f:
        f.write("%d\\n" % os.getpid())
    time.sleep(1.0)
pm.die_with_parent = preexec
log = Logger("console", "error", None).context()
pm.Supervised(pm.ProcessRegistry(), "exec", "t", ["sleep", "30"], log).start()
gevent.sleep(60)
"""


def test_server_killed_while_a_child_is_between_fork_and_exec_leaves_no_child(tmp_path):
    """The child inherits the server's SIGTERM handler until exec: the SIGTERM that
    PR_SET_PDEATHSIG sends when the server dies must kill it there too."""
    forked = tmp_path / "forked"
    script = SERVER_DIES_DURING_SPAWN.format(root=str(Path(__file__).resolve().parent.parent),
                                             forked=str(forked))
    server = subprocess.Popen([sys.executable, "-c", script])
    try:
        _wait(lambda: _child_pids(forked), 20, "the child forked")
        server.kill()
        server.wait(timeout=5)
    finally:
        if server.poll() is None:
            server.kill()
    (pid,) = _child_pids(forked)
    _wait(lambda: not _alive(pid), 5, f"child {pid} ended with the server")
