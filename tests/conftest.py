"""Shared fixtures for black-box tests: real server processes, real ffmpeg/ffprobe.

Rules: tests pick free ports, write configs and media into tmp dirs, and kill what they start by
pid. Generated media is made once per session.
Under load (the suite runs on 2 shared cores; issue 20 found its flaky tests at load 10-17): a
test waits for an event (a port listens, `wait_live`: a player got video, the API says so), never
a fixed sleep or a fixed reading time before asserting; deadlines of positive waits are generous
(30 s to start a server, 15 s and more for media) since they cost nothing when the event comes;
only a test whose claim is a time bound keeps a tight one.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} not listening after {timeout}s")


def need_tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"{name} not installed (make test installs it)")


class ServerProc:
    """A real `python srsedge.py -c CONF` process."""

    def __init__(self, tmp_path, conf_text, name="srs", port=None):
        self.dir = tmp_path / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / f"{name}.conf"
        self.log = self.dir / f"{name}.log"
        text = conf_text.replace("{port}", str(self.port)).replace("{dir}", str(self.dir))
        if "pid " not in text:
            text = f"pid {self.dir}/{name}.pid;\n" + text
        self.conf.write_text(text)
        self.proc = None

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([PYTHON, "srsedge.py", "-c", str(self.conf)], cwd=ROOT,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        if wait:
            wait_port(self.port, proc=self.proc)
        return self

    def url(self, path="live/livestream"):
        return f"rtmp://127.0.0.1:{self.port}/{path}"

    def log_text(self):
        return self.log.read_text(errors="replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


@pytest.fixture
def server_factory(tmp_path):
    procs = []

    def make(conf_text, name="srs", port=None, start=True):
        s = ServerProc(tmp_path, conf_text, name=name, port=port)
        procs.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in procs:
        s.stop(signal.SIGKILL)


ORIGIN_CONF = """
listen {port};
srs_log_tank console;
vhost __defaultVhost__ { }
"""


@pytest.fixture(scope="session")
def media_file(tmp_path_factory):
    """A 12 s H.264/AAC FLV, 25 fps, 2 s GOP, ~600 kbps."""
    need_tool("ffmpeg")
    out = tmp_path_factory.mktemp("media") / "test.flv"
    cmd = ["ffmpeg", "-v", "error", "-y",
           "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
           "-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50",
           "-sc_threshold", "0", "-b:v", "500k", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "64k", "-f", "flv", str(out)]
    subprocess.run(cmd, check=True, timeout=120)
    return out


class Publisher:
    def __init__(self, url, media, loop=True, extra=()):
        args = ["ffmpeg", "-v", "error", "-re"]
        if loop:
            args += ["-stream_loop", "-1"]
        args += ["-i", str(media), "-c", "copy", *extra, "-f", "flv", url]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stderr.read().decode(errors="replace")


@pytest.fixture
def publisher_factory():
    pubs = []

    def make(url, media, loop=True, extra=()):
        p = Publisher(url, media, loop, extra)
        pubs.append(p)
        return p

    yield make
    for p in pubs:
        p.stop()


class Player:
    """ffmpeg decoding a stream for `seconds`; reports decoded frames and streams found."""

    def __init__(self, url, seconds):
        self.url = url
        self.proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-nostats", "-rw_timeout", "15000000", "-i", url,
             "-t", str(seconds), "-f", "null", "-", "-progress", "pipe:1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        self.stdout = out.decode(errors="replace")
        self.stderr = err.decode(errors="replace")
        frames = re.findall(r"^frame=(\d+)", self.stdout, re.M)
        self.frames = int(frames[-1]) if frames else 0
        self.has_video = bool(re.search(r"Stream #0:\d.*Video: h264", self.stderr))
        self.has_audio = bool(re.search(r"Stream #0:\d.*Audio: aac", self.stderr))
        self.returncode = self.proc.returncode
        return self

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def player_factory():
    players = []

    def make(url, seconds):
        p = Player(url, seconds)
        players.append(p)
        return p

    yield make
    for p in players:
        p.kill()


def ffprobe_streams(url, timeout=30):
    out = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "10000000", "-show_entries",
                          "stream=codec_type,codec_name", "-of", "csv=p=0", url],
                         capture_output=True, text=True, timeout=timeout)
    return sorted(line.strip() for line in out.stdout.splitlines() if line.strip())


def wait_live(url, timeout=30.0):
    """Until `url` plays: a player of ours got a video message (the publisher is publishing).
    An event, not a sleep; it is one more play on the server."""
    from tests.rtmpclient import RtmpTestClient
    c = RtmpTestClient(url, timeout=timeout)
    try:
        return c.play(timeout) and c.pump_until(lambda: any(t == 9 for t, _, _ in c.media),
                                                timeout)
    finally:
        c.close()


def wait_for(predicate, timeout=10.0, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
