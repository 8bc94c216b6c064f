"""A real redis-server for cluster tests (Debian's; `make test` installs it): started on a free
port with no persistence, stopped (or killed) by pid. Tests that need one skip without it."""
import shutil
import subprocess

import pytest
import redis

from tests.conftest import free_port, wait_port


class RedisServer:
    def __init__(self, tmp_path, port=None):
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server not installed (make test installs it)")
        self.port = port or free_port()
        self.dir = tmp_path
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def client(self):
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)

    def stop(self, kill=False):
        if self.proc is not None and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            self.proc.wait(5)
