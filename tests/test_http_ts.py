"""lib/server/http/ts.py's shared muxing, without sockets: what two viewers (one from the start,
one joining mid-stream) receive must each be a TS stream ffprobe decodes from its first byte."""
import subprocess
from types import SimpleNamespace

from lib.media import flv
from lib.media.gop import GopCache
from lib.server.core.source import SharedMessage
from lib.server.http.ts import TsFanout
from tests.conftest import need_tool


class FakeViewer:
    def __init__(self):
        self.data = bytearray()

    def push(self, data):
        self.data += data


def decoded_video_frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
                          "-show_entries", "stream=nb_read_frames,codec_name", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, timeout=60)
    codec, _, frames = out.stdout.strip().splitlines()[0].partition(",")
    return codec, int(frames or 0)


def test_two_viewers_one_muxing(media_file, tmp_path):
    need_tool("ffprobe")
    tags = list(flv.iter_tags(media_file.read_bytes()))
    source = SimpleNamespace(video_sh=None, audio_sh=None, gop=GopCache(), sinks=[])
    msgs = []
    for tag_type, ts, payload in tags:
        if tag_type not in (8, 9):
            continue
        msg = SharedMessage(tag_type, ts, payload, 60000)
        if tag_type == 9 and payload[1] == 0:
            source.video_sh = msg
        elif tag_type == 8 and payload[1] == 0:
            source.audio_sh = msg
        else:
            source.gop.add(msg, tag_type == 9, msg.is_keyframe)
        msgs.append(msg)
        if len(msgs) == 80:                       # ~1.5 s in, mid-GOP: the fanout starts here
            break
    fanout = TsFanout(source)
    early, late = FakeViewer(), FakeViewer()
    fanout.add(early)
    rest = [SharedMessage(t, ts, p, 60000) for t, ts, p in tags if t in (8, 9)][80:]
    for i, msg in enumerate(rest):
        if i == 150:                              # mid-GOP again: the late viewer joins
            fanout.add(late)
        fanout.on_message(msg)
    assert early.data[:1] == b"\x47" and late.data[:1] == b"\x47"
    assert len(early.data) % 188 == 0 and len(late.data) % 188 == 0
    results = []
    for name, viewer in (("early", early), ("late", late)):
        path = tmp_path / f"{name}.ts"
        path.write_bytes(viewer.data)
        results.append(decoded_video_frames(path))
    (codec_e, frames_e), (codec_l, frames_l) = results
    assert codec_e == codec_l == "h264"
    video = [m for m in msgs + rest if m.type_id == 9 and m.payload[1] == 1]
    # the early viewer starts at the GOP (the first one) the fanout was primed with: every
    # frame; the late one at the last keyframe before it joined: every frame from there
    joined = rest[150]
    since_key = [m for m in video if m.timestamp >= max(
        k.timestamp for k in video if k.is_keyframe and k.timestamp <= joined.timestamp)]
    assert frames_e == len(video)
    assert frames_l == len(since_key) < frames_e
