"""The nginx HLS cache tier (nginx/nginx.conf, started by nginx/run.sh) with real nginx.

The origins are our HTTP server serving a directory where the test writes a rolling live
playlist (1 s segments, written then renamed like a real HLS writer). Asserts:
- 50 players following it: every segment reached the origin once, every player got every
  segment it saw (the right bytes), the playlist reached the origin about once per second and
  no player's playlist was far behind the writer;
- nginx starts and reloads while the origin is down (also when its name is not in DNS, as in
  the compose variant), serves from the backup, and fails over both ways with no player error;
- the tier works from a checkout in a private (0700) directory, and run.sh refuses a runtime
  directory nginx's workers cannot enter.
Real media through a real origin (idle-then-play, ffmpeg's HLS demuxer): test_delivery_e2e.py.
"""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from tests.conftest import ROOT, free_port, need_tool, wait_for, wait_port
from tests.test_http import ServerThread

CLIENTS = 50
FOLLOW_SECONDS = 20
SEGMENT_SECONDS = 1.0
WINDOW = 5
NGINX_DIR = os.path.join(ROOT, "nginx")
RUN_SH = os.path.join(NGINX_DIR, "run.sh")

ORIGIN_CONF = """
listen 127.0.0.1:0;
srs_log_tank console;
http_server { enabled on; listen 127.0.0.1:{http}; dir {www}; crossdomain on; }
vhost __defaultVhost__ { }
"""


def static_origin(www, http_port=0):
    conf = ORIGIN_CONF.replace("{www}", str(www)).replace("{http}", str(http_port))
    return ServerThread(conf, stats=True).start()


def origins(primary, backup):
    """upstream.conf for two loopback ports."""
    return f"set $hls_origin 127.0.0.1:{primary};\nset $hls_backup 127.0.0.1:{backup};\n"


class Tier:
    """The shipped tier run by nginx/run.sh: listen.conf/upstream.conf in a conf dir of its own,
    its runtime (logs, cache) in a fresh /tmp dir nginx's workers can enter."""

    def __init__(self, upstream_conf, run_sh=RUN_SH, conf_dir=None, runtime=True):
        self.port = free_port()
        self.run_sh = run_sh
        self.conf_dir = conf_dir or tempfile.mkdtemp(prefix="srsedge-tier-conf-")
        self.runtime = tempfile.mkdtemp(prefix="srsedge-tier-", dir="/tmp") if runtime else None
        if self.runtime:
            os.chmod(self.runtime, 0o711)
        with open(os.path.join(self.conf_dir, "listen.conf"), "w") as f:
            f.write(f"listen 127.0.0.1:{self.port};\n")
        with open(os.path.join(self.conf_dir, "upstream.conf"), "w") as f:
            f.write(upstream_conf)
        self.stderr_path = os.path.join(self.conf_dir, "stderr.log")
        self.proc = None
        self.base = f"http://127.0.0.1:{self.port}"

    def env(self):
        env = {k: v for k, v in os.environ.items() if k != "SRSEDGE_NGINX_RUNTIME"}
        if self.runtime:
            env["SRSEDGE_NGINX_RUNTIME"] = self.runtime
        return env

    def start(self):
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(["bash", self.run_sh, self.conf_dir], env=self.env(),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)
        try:
            wait_port(self.port, proc=self.proc)
        except (RuntimeError, TimeoutError) as e:
            raise AssertionError(f"{e}: {self.stderr()}") from None
        if self.runtime is None:          # run.sh chose it: it says where
            self.runtime = re.search(r"prefix (\S+) ", self.stderr()).group(1)
        return self

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def var(self, name):
        with open(os.path.join(self.runtime, "var", name), errors="replace") as f:
            return f.read()

    def children(self):
        found = set()
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        found.add(int(entry))
            except (OSError, ValueError, IndexError):
                pass
        return found

    def reload(self):
        """SIGHUP (run.sh execs nginx: its pid is the master's); waits for new workers."""
        before = self.children()
        self.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: self.children() - before, 10), self.var("error.log")[-2000:]
        assert self.proc.poll() is None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def tier_factory():
    need_tool("nginx")
    made = []

    def make(upstream_conf, **kw):
        tier = Tier(upstream_conf, **kw)
        made.append(tier)
        return tier

    yield make
    for tier in made:
        tier.stop()
        if tier.runtime and tier.runtime.startswith("/tmp/"):
            shutil.rmtree(tier.runtime, ignore_errors=True)
        shutil.rmtree(tier.conf_dir, ignore_errors=True)


# ------------------------------------------------------------------ a fake live stream
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


@pytest.fixture
def fake_hls(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    hls = FakeHls(str(www))
    for _ in range(3):
        hls.step()
    yield www, hls
    hls.stopping.set()


def follow(base, stop, result, hls=None):
    """One player until `stop` is set: poll the playlist, fetch each new segment once, check
    its bytes; with `hls`, note how many segments the playlist is behind the writer."""
    seen, got, errors, polls, lag = set(), set(), [], 0, 0
    with requests.Session() as s:
        while not stop.is_set():
            try:
                r = s.get(f"{base}/live/livestream.m3u8", timeout=10)
                newest = hls.seq - 1 if hls else 0
                polls += 1
                if r.status_code != 200:
                    errors.append(f"playlist: {r.status_code}")
                names = [x for x in r.text.splitlines() if x and not x.startswith("#")]
                if hls and names:
                    lag = max(lag, newest - int(names[-1][4:-3]))
                for name in names:
                    if name in seen:
                        continue
                    seen.add(name)
                    seg = s.get(f"{base}/live/{name}", timeout=10)
                    if seg.status_code == 200 and seg.content == segment_bytes(int(name[4:-3])):
                        got.add(name)
                    else:
                        errors.append(f"{name}: {seg.status_code} {len(seg.content)} bytes")
            except requests.RequestException as e:
                errors.append(repr(e))
            stop.wait(0.5)
    result.update(seen=seen, got=got, errors=errors, polls=polls, lag=lag)


def start_players(base, n, hls=None):
    stop = threading.Event()
    results = [{} for _ in range(n)]
    threads = [threading.Thread(target=follow, args=(base, stop, r, hls)) for r in results]
    for t in threads:
        t.start()

    def finish():
        stop.set()
        for t in threads:
            t.join(30)
        return results

    return finish


def upstream_lines(access_log, suffix):
    """(uri, upstream field, status) of the access log lines for URIs ending in `suffix`."""
    return [(m.group(1), m.group(2), m.group(3)) for m in
            re.finditer(rf'"GET (\S+{re.escape(suffix)}) HTTP[^"]*" (?:\d+) .*?upstream=(\S+(?: : \S+)*) '
                        rf'ustatus=(\S+(?: : \S+)*)', access_log)]


# ------------------------------------------------------------------ tests
def test_shipped_configs_pass_nginx_t(tmp_path):
    """Both variants, through run.sh; the compose one names hosts no DNS here knows."""
    need_tool("nginx")
    for conf_dir in (NGINX_DIR, os.path.join(NGINX_DIR, "compose")):
        runtime = tempfile.mkdtemp(prefix="srsedge-tier-", dir="/tmp")
        os.chmod(runtime, 0o711)
        try:
            out = subprocess.run(["bash", RUN_SH, "-t", conf_dir], capture_output=True, text=True,
                                 timeout=30, env=dict(os.environ, SRSEDGE_NGINX_RUNTIME=runtime))
        finally:
            shutil.rmtree(runtime, ignore_errors=True)
        assert out.returncode == 0, (conf_dir, out.stderr)
        assert "test is successful" in out.stderr


def test_cache_tier_one_origin_fetch_per_segment(tier_factory, fake_hls):
    www, hls = fake_hls
    origin = static_origin(www)
    tier = tier_factory(origins(origin.http_port, free_port())).start()
    try:
        hls.thread.start()
        started = time.time()
        finish = start_players(tier.base, CLIENTS, hls)
        time.sleep(FOLLOW_SECONDS)     # the players' run time (each player checks itself)
        results = finish()
        elapsed = time.time() - started
    finally:
        hls.stopping.set()
        tier.stop()
        origin.stop()
    stats = dict(origin.server.http_stats)
    segments = {p: n for p, n in stats.items() if p.endswith(".ts")}
    assert len(segments) >= FOLLOW_SECONDS * 0.7, segments
    assert max(segments.values()) == 1, {p: n for p, n in segments.items() if n > 1}
    for r in results:
        assert not r["errors"], r["errors"][:5]
        assert r["seen"] and r["got"] == r["seen"]
        assert len(r["seen"]) >= FOLLOW_SECONDS * 0.7
        # 1 s segments: the copy is at most ~1.5 s old (seen: 1); the bound leaves room for the
        # player thread's own delay between the response and reading the writer's position
        assert r["lag"] <= 3, r["lag"]
    client_polls = sum(r["polls"] for r in results)
    origin_polls = stats.get("/live/livestream.m3u8", 0)
    print(f"playlist: {client_polls} player requests, {origin_polls} origin requests in "
          f"{elapsed:.1f} s; max lag {max(r['lag'] for r in results)} segments")
    assert origin_polls <= elapsed + 3, (origin_polls, elapsed)    # one per second
    access = tier.var("access.log")
    assert "cache=HIT" in access and "cache=MISS" in access


def test_starts_while_the_origin_is_down_and_fails_over_both_ways(tier_factory, fake_hls):
    www, hls = fake_hls
    # Bound, not listening: connects are refused, and no outgoing connection can take the port.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    primary_port = holder.getsockname()[1]
    backup = static_origin(www)
    tier = tier_factory(origins(primary_port, backup.http_port)).start()   # primary: nothing
    hls.thread.start()
    finish = start_players(tier.base, 3)
    primary = None
    try:
        def served_by(port):
            return [u for u, up, st in upstream_lines(tier.var("access.log"), ".ts")
                    if up.split(" : ")[-1] == f"127.0.0.1:{port}" and st.split(" : ")[-1] == "200"]

        assert wait_for(lambda: len(served_by(backup.http_port)) >= 2, 15)
        tier.reload()                                       # reload with the origin still down
        n = len(served_by(backup.http_port))
        assert wait_for(lambda: len(served_by(backup.http_port)) >= n + 2, 15)
        holder.close()
        primary = static_origin(www, primary_port)          # the origin comes up: used first
        assert wait_for(lambda: len(served_by(primary_port)) >= 2, 15)
        primary.stop()                                      # and goes down again
        n = len(served_by(backup.http_port))
        assert wait_for(lambda: len(served_by(backup.http_port)) >= n + 2, 15)
    finally:
        results = finish()
        holder.close()
        hls.stopping.set()
        backup.stop()
        if primary is not None:
            primary.stop()
    for r in results:
        assert not r["errors"], r["errors"][:5]
        assert r["got"] == r["seen"] and len(r["seen"]) >= 6
    assert "[emerg]" not in tier.var("error.log")


def dns_server(names):
    """A UDP DNS server on loopback answering A queries for `names` (name -> IPv4), NXDOMAIN
    for any other name. Returns (port, stop)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stopping = threading.Event()

    def answer(query):
        i, labels = 12, []
        while query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode())
            i += 1 + query[i]
        qtype = struct.unpack(">H", query[i + 1:i + 3])[0]
        question = query[12:i + 5]
        ip = names.get(".".join(labels).lower())
        if ip is None or qtype != 1:
            flags = 0x8183 if ip is None else 0x8180      # NXDOMAIN / no A record
            return query[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + question
        record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 1, 4) + socket.inet_aton(ip)
        return query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + record

    def serve():
        while not stopping.is_set():
            try:
                query, peer = sock.recvfrom(512)
                sock.sendto(answer(query), peer)
            except (socket.timeout, IndexError, struct.error):
                continue
            except OSError:             # closed by stop()
                return

    threading.Thread(target=serve, daemon=True).start()

    def stop():
        stopping.set()
        sock.close()

    return sock.getsockname()[1], stop


def test_origin_name_not_in_dns_at_start(tier_factory, fake_hls):
    """The compose variant's case: the origin's container is down, so its name does not resolve;
    nginx must start anyway and serve from the backup (names resolved per request)."""
    www, hls = fake_hls
    backup = static_origin(www)
    dns_port, stop_dns = dns_server({"origin-backup.test": "127.0.0.1"})
    try:
        tier = tier_factory(f"resolver 127.0.0.1:{dns_port} valid=1s ipv6=off;\n"
                            f"resolver_timeout 2s;\n"
                            f"set $hls_origin origin.test:{free_port()};\n"
                            f"set $hls_backup origin-backup.test:{backup.http_port};\n").start()
        for _ in range(2):              # after the start, and after a reload
            r = requests.get(f"{tier.base}/live/livestream.m3u8", timeout=10)
            assert r.status_code == 200 and "seg-2.ts" in r.text
            seg = requests.get(f"{tier.base}/live/seg-2.ts", timeout=10)
            assert seg.status_code == 200 and seg.content == segment_bytes(2)
            tier.reload()
        assert "origin.test could not be resolved" in tier.var("error.log")
        assert "[emerg]" not in tier.var("error.log")
    finally:
        stop_dns()
        backup.stop()


def test_tier_runs_from_a_private_checkout(tier_factory, fake_hls):
    """A checkout in a 0700 directory (as under /root or from mktemp -d): run.sh with no runtime
    given must still give nginx's workers a cache they can use."""
    www, _ = fake_hls
    private = tempfile.mkdtemp(prefix="srsedge-private-")          # mode 0700
    try:
        shutil.copytree(NGINX_DIR, os.path.join(private, "nginx"))
        origin = static_origin(www)
        conf_dir = os.path.join(private, "nginx")
        tier = tier_factory(origins(origin.http_port, origin.http_port), conf_dir=conf_dir,
                            run_sh=os.path.join(conf_dir, "run.sh"), runtime=False).start()
        try:
            for _ in range(2):
                r = requests.get(f"{tier.base}/live/seg-1.ts", timeout=10)
                assert r.status_code == 200 and r.content == segment_bytes(1)
            assert r.headers["X-Cache-Status"] == "HIT"
            r = requests.get(f"{tier.base}/live/livestream.m3u8", timeout=10)
            assert r.status_code == 200 and "seg-2.ts" in r.text
            assert "Permission denied" not in tier.var("error.log")
        finally:
            tier.stop()
            origin.stop()
            if os.geteuid() == 0:           # run.sh moved the runtime out of the checkout
                assert tier.runtime.startswith("/tmp/srsedge-nginx.")
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_run_sh_refuses_a_runtime_the_workers_cannot_enter():
    need_tool("nginx")
    if os.geteuid() != 0:
        pytest.skip("only a root master runs its workers as another user (nobody)")
    private = tempfile.mkdtemp(prefix="srsedge-private-")          # mode 0700
    try:
        out = subprocess.run(["bash", RUN_SH, "-t"], capture_output=True, text=True, timeout=30,
                             env=dict(os.environ, SRSEDGE_NGINX_RUNTIME=f"{private}/runtime"))
        assert out.returncode == 1, out.stderr
        assert f"cannot enter {private}/runtime/var" in out.stderr
        assert "test is successful" not in out.stderr        # nginx was not run
    finally:
        shutil.rmtree(private, ignore_errors=True)


# ------------------------------------------------------------------ real origins, real media
SRS_BIN = os.environ.get("SRS_BIN", "/tmp/srs-build/objs/srs")

SRS_HLS_CONF = """
listen {rtmp};
daemon off;
pid {dir}/srs.pid;
srs_log_tank console;
http_server {{ enabled on; listen {http}; dir {dir}/html; }}
vhost __defaultVhost__ {{
    hls {{ enabled on; hls_path {dir}/html; hls_fragment 1; hls_window 5; }}
}}
"""


def probe_through(tier, path):
    """ffprobe of tier/path: (exit code, codec names, playlist requests the tier answered)."""
    run = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "10000000", "-show_entries",
                          "stream=codec_name", "-of", "csv=p=0", f"{tier.base}/{path}"],
                         capture_output=True, text=True, timeout=60)
    answered = re.findall(r'"GET \S+\.m3u8\S* HTTP', tier.var("access.log"))
    return run.returncode, sorted(set(run.stdout.split())), len(answered)


def wait_playlist(path):
    assert wait_for(lambda: os.path.exists(path) and open(path).read().count(".ts") >= 2, 30), \
        f"no playlist at {path}"


def test_tier_in_front_of_real_srs_with_its_default_hls_ctx(tier_factory, publisher_factory,
                                                            media_file, tmp_path):
    """SRS 7.0.18 with SRS's hls.conf defaults (hls_ctx on): `GET livestream.m3u8` answers a
    master playlist naming `livestream.m3u8?hls_ctx=ID`, which answers the media playlist.
    With the query out of the cache key, the tier answered the second URL with the cached
    master playlist: ffprobe looped until the next wall-clock second changed the key (817
    playlist requests in 1 s; here: 100s of HITs of the master playlist). The tier keys
    playlists on the URI and its query, as SRS's own hls.edge.conf ($uri$args)."""
    need_tool("ffprobe")
    if not os.access(SRS_BIN, os.X_OK):
        pytest.skip(f"SRS not built at {SRS_BIN} (../shared/tools/build-srs.sh)")
    rtmp, http = free_port(), free_port()
    conf = tmp_path / "srs.conf"
    conf.write_text(SRS_HLS_CONF.format(rtmp=rtmp, http=http, dir=tmp_path))
    srs = subprocess.Popen([SRS_BIN, "-c", str(conf)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(rtmp, timeout=15, proc=srs)
        publisher_factory(f"rtmp://127.0.0.1:{rtmp}/live/livestream", media_file)
        wait_playlist(tmp_path / "html" / "live" / "livestream.m3u8")
        master = requests.get(f"http://127.0.0.1:{http}/live/livestream.m3u8", timeout=10).text
        assert "livestream.m3u8?hls_ctx=" in master     # what SRS does with its default
        tier = tier_factory(origins(http, http)).start()
        code, codecs, requests_made = probe_through(tier, "live/livestream.m3u8")
        assert code == 0 and codecs == ["aac", "h264"], (code, codecs, requests_made)
        assert requests_made < 20, requests_made
    finally:
        srs.terminate()
        try:
            srs.wait(10)
        except subprocess.TimeoutExpired:
            srs.kill()
            srs.wait()


def test_tier_in_front_of_our_origin_real_media(tier_factory, server_factory, publisher_factory,
                                                media_file, tmp_path):
    need_tool("ffprobe")
    http = free_port()
    srv = server_factory(f"listen {{port}};\nsrs_log_tank console;\n"
                         f"http_server {{ enabled on; listen {http}; dir {tmp_path}/html; }}\n"
                         f"vhost __defaultVhost__ {{ hls {{ enabled on; hls_path {tmp_path}/html; "
                         f"hls_fragment 1; hls_window 5; }} }}\n")
    publisher_factory(srv.url("live/livestream"), media_file)
    wait_playlist(tmp_path / "html" / "live" / "livestream.m3u8")
    tier = tier_factory(origins(http, http)).start()
    code, codecs, requests_made = probe_through(tier, "live/livestream.m3u8")
    assert code == 0 and codecs == ["aac", "h264"], (code, codecs, requests_made)
    assert requests_made < 20, requests_made
