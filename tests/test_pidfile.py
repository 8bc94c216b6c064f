"""The pid file lock (lib/server/process/pidfile.py), with real `srsedge.py` processes.

A live instance holds a lock on its pid file, so a second start with the same pid file is
refused; a dead one (SIGKILLed, not even reaped yet) or an unrelated process whose pid the file
happens to name does not block a new start: the kernel dropped the lock when the process died.
"""
import os
import signal
import subprocess

from tests.conftest import PYTHON, ROOT, free_port, wait_for, wait_port

CONF = "listen {port};\npid {pid};\nsrs_log_tank console;\nvhost __defaultVhost__ { }\n"


def start(tmp_path, name, pid_path):
    """A server on a free port using `pid_path`; (process, port). Not reaped by anyone."""
    port = free_port()
    conf = tmp_path / f"{name}.conf"
    conf.write_text(CONF.replace("{port}", str(port)).replace("{pid}", str(pid_path)))
    proc = subprocess.Popen([PYTHON, "srsedge.py", "-c", str(conf)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def test_live_instance_refuses_second_start(tmp_path):
    pid_path = tmp_path / "srs.pid"
    first, port = start(tmp_path, "first", pid_path)
    try:
        wait_port(port, proc=first)
        assert int(pid_path.read_text()) == first.pid
        second, _ = start(tmp_path, "second", pid_path)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1
        assert f"another instance is running as pid {first.pid}" in err, err
        assert first.poll() is None and int(pid_path.read_text()) == first.pid
    finally:
        stop(first)


def test_sigkilled_instance_does_not_block_restart(tmp_path):
    """Right after kill -9 the dead process is a zombie (nobody reaped it): kill(pid, 0) still
    succeeds, but its lock is gone. The new start must succeed."""
    pid_path = tmp_path / "srs.pid"
    first, port = start(tmp_path, "first", pid_path)
    second = None
    try:
        wait_port(port, proc=None)
        assert int(pid_path.read_text()) == first.pid
        os.kill(first.pid, signal.SIGKILL)
        # a zombie, not reaped: its pid is still "running" for kill(pid, 0)
        assert wait_for(lambda: _state(first.pid) == "Z", 15)
        os.kill(first.pid, 0)
        second, port2 = start(tmp_path, "second", pid_path)
        wait_port(port2, proc=second)
        assert wait_for(lambda: pid_path.read_text().strip() == str(second.pid), 15)
    finally:
        stop(first)
        if second is not None:
            stop(second)


def test_pid_file_naming_an_unrelated_live_process_does_not_block(tmp_path):
    pid_path = tmp_path / "srs.pid"
    pid_path.write_text(f"{os.getpid()}\n")         # a reused pid: this test process is alive
    proc, port = start(tmp_path, "srv", pid_path)
    try:
        wait_port(port, proc=proc)
        assert wait_for(lambda: pid_path.read_text().strip() == str(proc.pid), 15)
    finally:
        stop(proc)


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_ctl_status_follows_the_lock(tmp_path):
    """scripts/srsedge-ctl asks the lock too: a pid file naming an unrelated live process is
    "stopped" (and start goes ahead), a live instance is "running"."""
    from tests.test_ops import ctl, write_conf
    port = free_port()
    conf = tmp_path / "ctl.conf"
    write_conf(conf, port)
    pid_path = tmp_path / "ctl.pid"
    pid_path.write_text(f"{os.getpid()}\n")
    r = ctl("status", conf)
    assert r.returncode == 1 and r.stdout.strip() == "srsedge is stopped", r.out
    r = ctl("start", conf)
    assert r.returncode == 0, r.out
    pid = int(pid_path.read_text())
    try:
        wait_port(port)
        r = ctl("status", conf)
        assert r.returncode == 0 and r.stdout.strip() == f"srsedge is running, pid {pid}", r.out
    finally:
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: ctl("status", conf).returncode == 1, 15)
