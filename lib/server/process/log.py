"""SRS-style logging: `[time][Level][pid][cid] message`.

Rules: one line per event that matters (connect, publish, play, upstream switch, error with its
reason), never per packet. Each connection logs through a `ContextLog` carrying its context id.
The sink is the console or a file (`srs_log_tank`); `reopen()` serves SIGUSR1 (logrotate).
Every message goes through lib.redact `redact` here, whoever wrote it: no token in clear.
"""
import os
import random
import string
import sys
import time

from lib.redact import redact

LEVELS = {"verbose": 0, "info": 1, "trace": 2, "warn": 3, "error": 4}
_NAMES = {0: "Verb", 1: "Debug", 2: "Trace", 3: "Warn", 4: "Error"}
_CID_CHARS = string.ascii_lowercase + string.digits


def new_cid():
    """A short random context id like SRS's (8 chars)."""
    return "".join(random.choice(_CID_CHARS) for _ in range(8))


class Logger:
    def __init__(self, tank="console", level="trace", path=None):
        self.tank = tank
        self.level = LEVELS.get(level, 2)
        self.path = path
        self.pid = os.getpid()
        self._stream = None
        self.reopen()

    def configure(self, tank, level, path):
        self.tank, self.level, self.path = tank, LEVELS.get(level, 2), path
        self.reopen()

    @property
    def to_console(self):
        return self._stream is sys.stderr

    def reopen(self):
        """(Re)open the log file; True if there is one, False when logging to the console."""
        old = self._stream
        if self.tank == "file" and self.path:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._stream = open(self.path, "a", buffering=1)
        else:
            self._stream = sys.stderr
        if old is not None and old is not sys.stderr and old is not self._stream:
            old.close()
        return not self.to_console

    def write(self, level, cid, msg):
        if level < self.level:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        self.pid = os.getpid()
        line = f"[{stamp}.{int(now * 1000) % 1000:03d}][{_NAMES[level]}][{self.pid}][{cid}] {redact(msg)}\n"
        try:
            self._stream.write(line)
            if self._stream is sys.stderr:
                self._stream.flush()
        except (OSError, ValueError):
            pass

    def context(self, cid=None):
        return ContextLog(self, cid or new_cid())


class ContextLog:
    __slots__ = ("logger", "cid")

    def __init__(self, logger, cid):
        self.logger = logger
        self.cid = cid

    def verbose(self, msg):
        self.logger.write(0, self.cid, msg)

    def info(self, msg):
        self.logger.write(1, self.cid, msg)

    def trace(self, msg):
        self.logger.write(2, self.cid, msg)

    def warn(self, msg):
        self.logger.write(3, self.cid, msg)

    def error(self, msg):
        self.logger.write(4, self.cid, msg)
