"""Enhanced RTMP end to end: HEVC+AAC and AV1+Opus through an origin and an edge.

A current ffmpeg (the imageio-ffmpeg wheel's static build, ffmpeg >= 6.1 with libx265, SVT-AV1 and
libopus; requirements-dev.txt) encodes a short clip once per session, publishes it with
`-re -stream_loop -1 -c copy` in Enhanced RTMP, and decodes what players get: RTMP and HTTP-FLV
from the origin and from an edge, HLS from the origin (HEVC in MPEG-TS; AV1+Opus in fMP4 with
hls_use_fmp4). Oracles: ffmpeg's own stream detection and decode log (no [error] line, so the
first frame a new player gets is decodable), the raw FLV bytes of an HTTP-FLV player (first video
frame after the sequence header is a keyframe), and the HTTP API (codec names and the sizes we
encoded). Debian's ffmpeg stays the default elsewhere; this file only uses the wheel's.
"""
import re
import subprocess

import m3u8
import pytest
import requests

from lib.media import flv
from tests.conftest import free_port, wait_for
from tests.test_api import ApiProc

WIDTH, HEIGHT, FPS = 160, 90, 15


def current_ffmpeg():
    try:
        import imageio_ffmpeg
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:          # not installed, or no binary for this platform
        pytest.skip(f"imageio-ffmpeg (requirements-dev.txt) not usable: {e}")
    version = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True,
                             timeout=30).stdout
    found = re.search(r"version n?(\d+)\.(\d+)", version)
    if not found or (int(found[1]), int(found[2])) < (6, 1):
        pytest.skip(f"{exe} is older than ffmpeg 6.1 (no Enhanced RTMP): {version[:60]}")
    encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True,
                              text=True, timeout=30).stdout
    missing = [e for e in ("libx265", "libsvtav1", "libvpx-vp9", "libopus") if e not in encoders]
    if missing:
        pytest.skip(f"{exe} lacks {missing}")
    return exe


@pytest.fixture(scope="session")
def ffmpeg_new():
    return current_ffmpeg()


def encode(ffmpeg, out, video, audio):
    cmd = [ffmpeg, "-hide_banner", "-v", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
           "-t", "4", *video, *audio, "-f", "flv", str(out)]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    return out


@pytest.fixture(scope="session")
def hevc_flv(ffmpeg_new, tmp_path_factory):
    """4 s of HEVC (1 s GOP, no scene cuts) + AAC in Enhanced RTMP FLV (hvc1)."""
    return encode(ffmpeg_new, tmp_path_factory.mktemp("codecs") / "hevc.flv",
                  ["-c:v", "libx265", "-preset", "ultrafast",
                   "-x265-params", f"log-level=error:keyint={FPS}:min-keyint={FPS}:scenecut=0"],
                  ["-c:a", "aac", "-b:a", "32k"])


@pytest.fixture(scope="session")
def av1_flv(ffmpeg_new, tmp_path_factory):
    """4 s of AV1 (1 s GOP) + Opus in Enhanced RTMP FLV (av01, Opus)."""
    return encode(ffmpeg_new, tmp_path_factory.mktemp("codecs") / "av1.flv",
                  ["-c:v", "libsvtav1", "-preset", "12", "-g", str(FPS),
                   "-svtav1-params", "scd=0"],
                  ["-c:a", "libopus", "-b:a", "32k"])


CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen {api}; }
http_server { enabled on; listen {http}; dir {dir}; }
vhost __defaultVhost__ {
    http_remux { enabled on; mount [app]/[stream].flv; }
    %s
}
"""
HLS = "hls { enabled on; hls_path {dir}/hls; hls_fragment 1; hls_window 20; hls_use_fmp4 %s; }"
CLUSTER = "cluster { mode remote; origin 127.0.0.1:%d; }"


class Node(ApiProc):
    """A server process with the HTTP API and an HTTP server (HTTP-FLV)."""

    def __init__(self, tmp_path, name, vhost_extra):
        self.http_port = free_port()
        self.extra_ports = (self.http_port,)
        super().__init__(tmp_path, name, conf=(CONF % vhost_extra).replace("{http}", str(self.http_port)))

    def flv_url(self, stream):
        return f"http://127.0.0.1:{self.http_port}/live/{stream}.flv"

    def stream(self, name):
        streams = self.get("/api/v1/streams?count=100")["streams"]
        return next((s for s in streams if s["name"] == name), None)

    def metrics(self):
        return self.request("GET", "/metrics").text


@pytest.fixture
def cluster(tmp_path):
    nodes = []

    def make(hls_fmp4):
        origin = Node(tmp_path, "origin", HLS % ("on" if hls_fmp4 else "off"))
        nodes.append(origin.start())
        edge = Node(tmp_path, "edge", CLUSTER % origin.port)
        nodes.append(edge.start())
        return origin, edge

    yield make
    for node in nodes:
        node.stop()


@pytest.fixture
def publish(ffmpeg_new):
    procs = []

    def start(media, url):
        p = subprocess.Popen([ffmpeg_new, "-hide_banner", "-v", "error", "-re", "-stream_loop",
                              "-1", "-i", str(media), "-c", "copy", "-f", "flv", url],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


class Decoded:
    def __init__(self, stderr, stdout):
        self.log = stderr
        frames = re.findall(r"^frame=(\d+)", stdout, re.M)
        self.frames = int(frames[-1]) if frames else 0
        self.errors = [line for line in stderr.splitlines() if line.startswith(("[error]",
                                                                                "[fatal]"))]
        inputs = stderr.split("Stream mapping:")[0]
        self.codecs = sorted(set(re.findall(r"Stream #0:\d.*?: (?:Video|Audio): (\w+)", inputs)))


def decode(ffmpeg, url, seconds=2, extra=()):
    """Play `url` for `seconds` of media with the current ffmpeg; every log line is prefixed
    with its level so decode errors can be told from information."""
    out = subprocess.run([ffmpeg, "-hide_banner", "-nostats", "-loglevel", "level+info",
                          "-rw_timeout", "15000000", *extra, "-i", url, "-t", str(seconds),
                          "-f", "null", "-", "-progress", "pipe:1"],
                         capture_output=True, text=True, timeout=90)
    return Decoded(out.stderr, out.stdout)


def first_video_frames(url, count=3):
    """The first video tags an HTTP-FLV player gets, as raw payloads."""
    data = b""
    with requests.get(url, stream=True, timeout=15) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(4096):
            data += chunk
            videos = [p for t, p in _tags(data) if t == 9]
            if len(videos) >= count:
                return videos
    raise AssertionError("stream ended early")


def _tags(data):
    pos = 13
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        if pos + 11 + size > len(data):
            return
        yield data[pos], data[pos + 11:pos + 11 + size]
        pos += 11 + size + 4


def check_player(ffmpeg, url, codecs):
    d = decode(ffmpeg, url)
    assert d.errors == [], d.log[-3000:]
    assert d.codecs == codecs, d.log[-3000:]
    assert d.frames >= FPS, d.log[-3000:]                  # 2 s at 15 fps, with slack


def check_flv_start(url, fourcc):
    """Sequence start, then (after any metadata) a coded keyframe, all Enhanced RTMP."""
    frames = first_video_frames(url, count=4)
    assert frames[0][0] & 0x8F == 0x80 and frames[0][1:5] == fourcc   # ExHeader SequenceStart
    coded = [p for p in frames if p[0] & 0x0F in (1, 3)]             # CodedFrames(X)
    assert coded and (coded[0][0] >> 4) & 0x07 == 1, [p[:8].hex() for p in frames]


def wait_hls(origin, stream, segments=3):
    path = origin.dir / "hls" / "live" / f"{stream}.m3u8"

    def ready():
        try:
            pl = m3u8.load(str(path))
        except (OSError, ValueError):
            return None
        return pl if len(pl.segments) >= segments else None
    pl = wait_for(ready, timeout=30, interval=0.3)
    assert pl, origin.log_text()[-3000:]
    return path, pl


def check_api(node, stream, video, audio):
    s = wait_for(lambda: (node.stream(stream) or {}).get("audio") and node.stream(stream), 15)
    assert s, node.log_text()[-2000:]
    got_v = {k: s["video"][k] for k in video}
    got_a = {k: s["audio"][k] for k in audio}
    assert (got_v, got_a) == (video, audio)


def test_hevc_aac_over_rtmp_http_flv_and_hls_ts(ffmpeg_new, hevc_flv, cluster, publish):
    origin, edge = cluster(hls_fmp4=False)
    pub = publish(hevc_flv, origin.url("live/hevc"))
    check_api(origin, "hevc", {"codec": "HEVC", "name": "H.265", "width": WIDTH,
                               "height": HEIGHT, "profile": "Main"},
              {"codec": "AAC", "sample_rate": 48000, "channel": 1})
    for url in (origin.url("live/hevc"), edge.url("live/hevc"), edge.flv_url("hevc")):
        check_player(ffmpeg_new, url, ["aac", "hevc"])
    check_flv_start(origin.flv_url("hevc"), b"hvc1")
    check_flv_start(edge.flv_url("hevc"), b"hvc1")
    check_api(edge, "hevc", {"name": "H.265", "width": WIDTH}, {"name": "AAC"})
    assert 'codec="H.265"' in origin.metrics()
    path, pl = wait_hls(origin, "hevc")
    assert pl.segments[0].uri.endswith(".ts")
    check_player(ffmpeg_new, str(path), ["aac", "hevc"])
    assert "skipped" not in origin.log_text()
    assert pub.poll() is None, pub.stderr.read().decode()


def test_av1_opus_over_rtmp_http_flv_and_hls_fmp4(ffmpeg_new, av1_flv, cluster, publish):
    origin, edge = cluster(hls_fmp4=True)
    pub = publish(av1_flv, origin.url("live/av1"))
    check_api(origin, "av1", {"codec": "AV1", "name": "AV1", "width": WIDTH, "height": HEIGHT},
              {"codec": "Opus", "sample_rate": 48000, "channel": 1})
    for url in (origin.url("live/av1"), edge.url("live/av1"), edge.flv_url("av1")):
        check_player(ffmpeg_new, url, ["av1", "opus"])
    check_flv_start(edge.flv_url("av1"), b"av01")
    check_api(edge, "av1", {"name": "AV1"}, {"name": "Opus"})
    path, pl = wait_hls(origin, "av1")
    text = path.read_text()
    assert "#EXT-X-VERSION:7" in text and pl.segment_map and pl.segment_map[0].uri
    assert pl.segments[0].uri.endswith(".m4s")
    hls_url = f"http://127.0.0.1:{origin.http_port}/hls/live/av1.m3u8"   # srsedge's HTTP server
    check_player(ffmpeg_new, hls_url, ["av1", "opus"])
    r = requests.get(hls_url.replace("av1.m3u8", pl.segments[-1].uri), timeout=5)
    assert r.headers["Content-Type"] == "video/iso.segment"
    assert r.headers["Cache-Control"] == "max-age=31536000, immutable"
    assert "skipped" not in origin.log_text()
    assert pub.poll() is None, pub.stderr.read().decode()


@pytest.fixture(scope="session")
def vp9_flv(ffmpeg_new, tmp_path_factory):
    """4 s of VP9 (1 s GOP) + Opus in Enhanced RTMP FLV (vp09, Opus)."""
    return encode(ffmpeg_new, tmp_path_factory.mktemp("codecs") / "vp9.flv",
                  ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                   "-g", str(FPS)], ["-c:a", "libopus", "-b:a", "32k"])


@pytest.mark.parametrize("clip,codecs", [("vp9_flv", ["opus", "vp9"]),
                                         ("hevc_flv", ["aac", "hevc"])])
def test_fmp4_segments_of_enhanced_codecs_decode(ffmpeg_new, clip, codecs, request, tmp_path):
    """The segmenter alone (no server): every init + segment decodes, all frames are there."""
    from lib.media.hls import Segmenter
    from lib.server.hls.sink import apply_actions
    from tests.test_hls import conf
    seg = Segmenter(conf(hls_use_fmp4=True, hls_fragment=1.0, hls_window=60.0), "v", "live", "s")
    actions = seg.on_publish()
    for tag_type, ts, payload in flv.iter_tags(request.getfixturevalue(clip).read_bytes()):
        actions += seg.feed(tag_type, ts, payload, tag_type == 9 and flv.is_video_keyframe(payload))
    actions += seg.on_unpublish()
    assert [a for a in actions if a[0] == "warn"] == []
    assert apply_actions(str(tmp_path), actions) == (None, [])    # no failure, no note
    pl = m3u8.load(str(tmp_path / "live" / "s.m3u8"))
    init = (tmp_path / "live" / pl.segment_map[0].uri).read_bytes()
    joined = tmp_path / "all.mp4"
    joined.write_bytes(init + b"".join((tmp_path / "live" / s.uri).read_bytes()
                                       for s in pl.segments))
    d = decode(ffmpeg_new, str(joined), seconds=10)
    assert d.errors == [] and d.codecs == codecs, d.log[-3000:]
    assert d.frames == 4 * FPS
