"""The nginx HLS cache tier (nginx/nginx.conf, unchanged) in front of our HTTP server.

The origin serves a directory where the test writes a rolling live playlist (1 s segments,
written then renamed like a real HLS writer). 50 clients follow it through nginx for 30 s.
Asserts: every segment reached the origin at most once, every client got every segment it saw
in the playlist (the right bytes), and the playlist reached the origin far less often than the
clients asked for it.
"""
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from tests.conftest import ROOT, free_port, need_tool, wait_port
from tests.test_http import ServerThread

CLIENTS = 50
FOLLOW_SECONDS = 30
SEGMENT_SECONDS = 1.0
WINDOW = 5
NGINX_DIR = os.path.join(ROOT, "nginx")

ORIGIN_CONF = """
listen 127.0.0.1:0;
srs_log_tank console;
http_server { enabled on; listen 127.0.0.1:0; dir {www}; crossdomain on; }
vhost __defaultVhost__ { }
"""


def segment_bytes(seq):
    return (f"segment {seq:06d} ".encode() * 1500)[:20000]


class FakeHls:
    """Writes live/livestream.m3u8 and live/seg-N.ts every SEGMENT_SECONDS."""

    def __init__(self, root):
        self.dir = os.path.join(root, "live")
        os.makedirs(self.dir, exist_ok=True)
        self.seq = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _write(self, name, data):
        tmp = os.path.join(self.dir, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(self.dir, name))

    def step(self):
        self._write(f"seg-{self.seq}.ts", segment_bytes(self.seq))
        first = max(0, self.seq - WINDOW + 1)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1",
                 f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for n in range(first, self.seq + 1):
            lines += [f"#EXTINF:{SEGMENT_SECONDS:.3f},", f"seg-{n}.ts"]
        self._write("livestream.m3u8", ("\n".join(lines) + "\n").encode())
        old = os.path.join(self.dir, f"seg-{self.seq - 3 * WINDOW}.ts")
        if os.path.exists(old):
            os.remove(old)
        self.seq += 1

    def _run(self):
        while not self.stopping.wait(SEGMENT_SECONDS):
            self.step()


def follow(base, deadline, result):
    """One player: poll the playlist, fetch each new segment once, check its bytes."""
    seen, got, errors, polls = set(), set(), [], 0
    with requests.Session() as s:
        while time.time() < deadline:
            try:
                r = s.get(f"{base}/live/livestream.m3u8", timeout=10)
                polls += 1
                names = [x for x in r.text.splitlines() if x and not x.startswith("#")]
                for name in names:
                    if name in seen:
                        continue
                    seen.add(name)
                    seq = int(name[4:-3])
                    seg = s.get(f"{base}/live/{name}", timeout=10)
                    if seg.status_code == 200 and seg.content == segment_bytes(seq):
                        got.add(name)
                    else:
                        errors.append(f"{name}: {seg.status_code} {len(seg.content)} bytes")
            except requests.RequestException as e:
                errors.append(repr(e))
            time.sleep(0.5)
    result.update(seen=seen, got=got, errors=errors, polls=polls)


@pytest.fixture
def nginx_prefix():
    need_tool("nginx")
    # Workers of a root master run as nobody: the prefix must be reachable for them.
    prefix = tempfile.mkdtemp(prefix="srsedge-nginx-", dir="/tmp")
    os.chmod(prefix, 0o755)
    shutil.copy(os.path.join(NGINX_DIR, "nginx.conf"), prefix)
    os.mkdir(os.path.join(prefix, "var"))
    yield prefix
    shutil.rmtree(prefix, ignore_errors=True)


def nginx_cmd(prefix, *extra):
    return [shutil.which("nginx"), "-p", prefix + "/", "-c", "nginx.conf", *extra]


def test_shipped_config_passes_nginx_t(nginx_prefix):
    for name in ("upstream.conf", "listen.conf"):
        shutil.copy(os.path.join(NGINX_DIR, name), nginx_prefix)
    out = subprocess.run(nginx_cmd(nginx_prefix, "-t"), capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr


def test_cache_tier_one_origin_fetch_per_segment(nginx_prefix, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    origin = ServerThread(ORIGIN_CONF.replace("{www}", str(www)), stats=True).start()
    hls = FakeHls(str(www))
    for _ in range(3):
        hls.step()
    port = free_port()
    with open(os.path.join(nginx_prefix, "upstream.conf"), "w") as f:
        f.write(f"server 127.0.0.1:{origin.http_port} max_fails=2 fail_timeout=5s;\n"
                f"server 127.0.0.1:{free_port()} backup;\n")
    with open(os.path.join(nginx_prefix, "listen.conf"), "w") as f:
        f.write(f"listen 127.0.0.1:{port};\n")
    log = open(os.path.join(nginx_prefix, "var", "stderr.log"), "wb")
    nginx = subprocess.Popen(nginx_cmd(nginx_prefix), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc=nginx)
        hls.thread.start()
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + FOLLOW_SECONDS
        results = [{} for _ in range(CLIENTS)]
        threads = [threading.Thread(target=follow, args=(base, deadline, r)) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join(FOLLOW_SECONDS + 30)
    finally:
        hls.stopping.set()
        nginx.terminate()
        nginx.wait(10)
        log.close()
        origin.stop()
    stats = dict(origin.server.http_stats)
    segments = {p: n for p, n in stats.items() if p.endswith(".ts")}
    assert len(segments) >= FOLLOW_SECONDS * 0.7, segments
    assert max(segments.values()) == 1, {p: n for p, n in segments.items() if n > 1}
    for r in results:
        assert not r["errors"], r["errors"][:5]
        assert r["seen"] and r["got"] == r["seen"]
        assert len(r["seen"]) >= FOLLOW_SECONDS * 0.7
    client_polls = sum(r["polls"] for r in results)
    origin_polls = stats.get("/live/livestream.m3u8", 0)
    assert origin_polls < client_polls / 10, (origin_polls, client_polls)
    with open(os.path.join(nginx_prefix, "var", "access.log")) as f:
        access = f.read()
    assert "cache=HIT" in access and "cache=MISS" in access
