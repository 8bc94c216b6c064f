"""The pid file: written at start, removed at exit; a live pid in it means another instance.

Rules: a stale file (its pid is not running) is replaced; a live one makes start fail with a clear
message. Only the process that wrote the file removes it.
"""
import os


class PidFileError(Exception):
    pass


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def acquire(path):
    pid = read_pid(path)
    if pid and pid != os.getpid() and _running(pid):
        raise PidFileError(f"pid file {path}: another instance is running as pid {pid}")
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def release(path):
    if read_pid(path) == os.getpid():
        try:
            os.unlink(path)
        except OSError:
            pass
