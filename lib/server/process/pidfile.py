"""The pid file: locked while this process runs, as SRS does (a lock, not the pid, says "running").

Rules:
- `acquire(path)` opens (or creates) the file, takes an exclusive non-blocking flock(2) on it and
  writes our pid into it. The lock, not the pid, says an instance runs: the kernel drops it the
  moment the process dies (kill -9 included, reaped or not), and a reused pid holds no lock.
  A file that another live instance has locked makes start fail with one clear message naming
  its pid. The descriptor stays open (close-on-exec, so workers and daemons do not inherit it)
  until `release`.
- flock, not fcntl(F_SETLK): a POSIX record lock is dropped when the process closes *any*
  descriptor of the file (a `read_pid` would do it); flock locks belong to the open file.
  flock(1) from util-linux takes the same lock, so shell scripts can ask too (scripts/srsedge-ctl).
- Only the process that holds the lock removes the file.
"""
import fcntl
import os


class PidFileError(Exception):
    pass


_held = {}   # path -> the open, locked descriptor of this process


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def locked(path):
    """True when some process (this one included) holds the lock of the pid file `path`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def acquire(path):
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PidFileError(f"pid file {path}: another instance is running as pid "
                           f"{read_pid(path) or '?'} (it holds the file's lock)") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[path] = fd


def release(path):
    fd = _held.pop(path, None)
    if fd is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass
    os.close(fd)
