"""Per-player timestamps decoded by an outside RTMP reader (issue 22 point 3): ffprobe plays from
a real server while our client publishes a real H.264/AAC file with timestamps we choose; players
join at different GOPs (time_jitter full: each starts at 0 at its GOP) and, with time_jitter
off, across the 0xFFFFFF line (extended timestamps: each player's first message per chunk
stream is its own fmt 0 with the 4-byte field, repeated on continuation chunks at chunk size
128; the shared messages after it fmt 1 deltas). The expectation is the published timestamps,
checked against what ffprobe demuxes (and our client, as a second reader)."""
import subprocess
import time

from lib.media import flv
from tests.conftest import need_tool
from tests.rtmpclient import RtmpTestClient


def published(media_file, start, seconds):
    """(type, ts, payload) of the file's first `seconds`, timestamps moved to begin at `start`."""
    tags = [(t, ts, p) for t, ts, p in flv.iter_tags(open(media_file, "rb").read()) if t in (8, 9)]
    return [(t, start + ts, p) for t, ts, p in tags if ts < seconds * 1000]


def ffprobe(url):
    return subprocess.Popen(["ffprobe", "-v", "error", "-rw_timeout", "3000000",
                             "-show_entries", "packet=codec_type,dts",
                             "-of", "csv=p=0", url], stdout=subprocess.PIPE, text=True)


def video_dts(proc):
    try:                               # it ends 3 s after the stream (-rw_timeout)
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return [int(line.split(",")[1]) for line in out.splitlines() if line.startswith("video,")]


def run(server_factory, media_file, jitter, start, joins):
    need_tool("ffprobe")
    srv = server_factory("listen {port};\nsrs_log_tank console;\nvhost __defaultVhost__ {\n"
                         f"    chunk_size 128;\n    play {{ time_jitter {jitter}; }}\n}}\n")
    url = srv.url("live/tb")
    pub = RtmpTestClient(url)
    assert pub.publish()
    msgs = published(media_file, start, 12)
    pieces = [[m for m in msgs if lo * 1000 <= m[1] - start < hi * 1000]
              for lo, hi in zip((0,) + joins, joins + (12,))]
    probes, ours = [], []
    for k, piece in enumerate(pieces):
        for t, ts, p in piece:
            pub.send_media(t, ts, p)
        if k < len(joins):
            time.sleep(0.3)
            probes.append(ffprobe(url))
            own = RtmpTestClient(url)
            assert own.play()
            ours.append(own)
            time.sleep(1.5)            # ffprobe has connected and is playing
    for own in ours:
        own.read_for(1.0)
    pub.close()
    video = [ts for t, ts, p in msgs if t == 9 and p[1] == 1]
    keys = [ts for t, ts, p in msgs if t == 9 and p[:2] == b"\x17\x01"]
    return [video_dts(p) for p in probes], ours, video, keys


def check(got, video, keys, base_of):
    """`got` is the published video from one keyframe on, shifted by `base_of(keyframe)`."""
    assert got, "no video"
    for k in keys:
        if got == [ts - base_of(k) for ts in video if ts >= k]:
            return k
    raise AssertionError(f"not the published video from a keyframe: {got[:8]}...")


def test_ffprobe_players_joining_at_different_gops(server_factory, media_file):
    probes, ours, video, keys = run(server_factory, media_file, "full", 0, (3, 7))
    starts = {check(got, video, keys, lambda k: k) for got in probes}
    assert len(starts) == 2                       # two GOPs, each player starting at 0
    for own in ours:
        check([ts for t, ts, p in own.media if t == 9 and p[1] == 1], video, keys, lambda k: k)


def test_ffprobe_players_across_the_extended_timestamp_line(server_factory, media_file):
    start = 0xFFFFFF - 5000                       # the line is crossed 5 s in
    probes, ours, video, keys = run(server_factory, media_file, "off", start, (3, 7))
    starts = [check(got, video, keys, lambda k: 0) for got in probes]
    assert starts[0] < 0xFFFFFF < starts[1]       # one player joined before the line, one after
    assert probes[0][-1] > 0xFFFFFF
    for own in ours:
        check([ts for t, ts, p in own.media if t == 9 and p[1] == 1], video, keys, lambda k: 0)
