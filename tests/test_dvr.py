"""DVR black-box: a real server records what real ffmpeg publishes; ffprobe/ffmpeg check the files;
a real HTTP server receives on_dvr."""
import json
import os
import signal
import subprocess
import urllib.request

import pytest

from tests.conftest import ROOT, free_port, need_tool, wait_for, wait_port
from tests.test_hooks import HookServer

CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen API; }
vhost __defaultVhost__ {
    dvr {
        enabled on;
        dvr_plan PLAN;
        dvr_duration 4;
        dvr_path PATH;
    }
    http_hooks { enabled on; on_dvr HOOK; }
}
"""


@pytest.fixture
def hook_server():
    with HookServer.running() as srv:
        yield srv


def start(server_factory, hook_server, plan, path, api=None):
    hook = hook_server.answer("/dvr")
    conf = CONF.replace("PLAN", plan).replace("PATH", path).replace("HOOK", hook)
    conf = conf.replace("API", str(api or free_port()))
    return server_factory(conf)


def publish_burst(url, media):
    """Publish the whole file as fast as possible (no -re): the recording is 12 s of media."""
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(media), "-c", "copy", "-f", "flv", url],
                   check=True, timeout=60, stdin=subprocess.DEVNULL)


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "format=duration:stream=codec_type,codec_name,width,height",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=30)
    info = json.loads(out.stdout)
    streams = sorted((s["codec_type"], s["codec_name"]) for s in info["streams"])
    return streams, float(info["format"]["duration"])


def decodes(path):
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    return out.returncode == 0 and not out.stderr.strip(), out.stderr


def recorded(directory, count, hook_server, calls=None, timeout=30):
    """Wait for `count` complete files and `calls` (default: count) on_dvr calls; returns the
    files sorted by name."""
    calls = count if calls is None else calls

    def done():
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix != ".tmp")
        return files if len(files) >= count and len(hook_server.calls) >= calls else None
    files = wait_for(done, timeout=timeout)
    assert files, f"files: {list(directory.rglob('*'))}"
    return files


@pytest.mark.parametrize("ext", ["flv", "mp4"])
def test_session_plan_records_one_playable_file(server_factory, hook_server, media_file,
                                                tmp_path, ext):
    need_tool("ffprobe")
    rec = tmp_path / "rec"
    srv = start(server_factory, hook_server, "session", f"{rec}/[app]/[stream].[timestamp].{ext}")
    publish_burst(srv.url("live/s"), media_file)
    (path,) = recorded(rec, 1, hook_server)
    assert path.parent == rec / "live" and path.name.startswith("s.") and path.suffix == "." + ext
    streams, duration = probe(path)
    assert streams == [("audio", "aac"), ("video", "h264")]
    assert abs(duration - 12.0) <= 1.0, duration
    ok, err = decodes(path)
    assert ok, err
    assert not list(rec.rglob("*.tmp"))
    (hook_path, _, body), = hook_server.calls
    assert hook_path == "/dvr"
    assert body["action"] == "on_dvr" and body["file"] == str(path)
    assert body["cwd"] == ROOT
    assert (body["vhost"], body["app"], body["stream"]) == ("__defaultVhost__", "live", "s")
    assert body["stream_url"] == "/live/s" and body["client_id"]
    assert body["tcUrl"] == f"rtmp://127.0.0.1:{srv.port}/live"
    assert set(body) >= {"server_id", "service_id", "ip", "param", "stream_id"}


@pytest.mark.parametrize("ext", ["flv", "mp4"])
def test_segment_plan_cuts_at_keyframes_after_duration(server_factory, hook_server, media_file,
                                                       tmp_path, ext):
    need_tool("ffprobe")
    rec = tmp_path / "rec"
    srv = start(server_factory, hook_server, "segment", f"{rec}/[stream]-[timestamp].{ext}")
    publish_burst(srv.url("live/seg"), media_file)
    files = recorded(rec, 3, hook_server)
    assert len(files) == 3, files
    files.sort(key=lambda p: (len(p.name), p.name))     # by timestamp, then -N suffix
    durations = []
    for path in files:
        streams, duration = probe(path)
        assert streams == [("audio", "aac"), ("video", "h264")], path
        durations.append(duration)
    # the media has a keyframe every 2 s: dvr_duration 4 cuts at 4 s and 8 s
    assert all(abs(d - 4.0) <= 1.0 for d in durations), durations
    assert abs(sum(durations) - 12.0) <= 1.5
    ok, err = decodes(files[1])
    assert ok, err
    assert sorted(body["file"] for _, _, body in hook_server.calls) == sorted(map(str, files))


def test_no_overwrite_and_crash_leaves_only_tmp(server_factory, hook_server, media_file,
                                                tmp_path, publisher_factory):
    """A name in use (a complete file, or a .tmp left by a crash) is never reused; while
    recording only <name>.tmp exists, so a crash never leaves a file that looks complete."""
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "s.flv").write_bytes(b"earlier recording")
    (rec / "s-1.flv.tmp").write_bytes(b"left by a crash")
    api = free_port()
    srv = start(server_factory, hook_server, "session", f"{rec}/[stream].flv", api=api)
    wait_port(api)
    publish_burst(srv.url("live/s"), media_file)
    files = recorded(rec, 2, hook_server, calls=1)
    assert [p.name for p in files] == ["s-2.flv", "s.flv"]
    assert (rec / "s.flv").read_bytes() == b"earlier recording"
    assert (rec / "s-1.flv.tmp").read_bytes() == b"left by a crash"
    assert abs(probe(rec / "s-2.flv")[1] - 12.0) <= 1.0

    pub = publisher_factory(srv.url("live/s"), media_file)

    def recording():
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/v1/streams", timeout=5) as r:
            streams = json.load(r)["streams"]
        dvr = [s["dvr"] for s in streams if s["name"] == "s" and s["dvr"]]
        return dvr[0] if dvr and dvr[0]["recording"] and dvr[0]["file"] else None
    dvr = wait_for(recording, timeout=20)
    assert dvr and dvr["file"] == str(rec / "s-3.flv"), dvr
    assert wait_for(lambda: os.path.getsize(rec / "s-3.flv.tmp") > 10000, timeout=20)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    pub.stop()
    assert not (rec / "s-3.flv").exists()
    assert (rec / "s-3.flv.tmp").exists()


def test_server_stop_completes_the_recording(server_factory, hook_server, media_file, tmp_path,
                                             publisher_factory):
    """SIGTERM while recording: the file is closed, renamed and announced before the exit."""
    need_tool("ffprobe")
    rec = tmp_path / "rec"
    srv = start(server_factory, hook_server, "session", f"{rec}/[stream].mp4")
    pub = publisher_factory(srv.url("live/s"), media_file)
    assert wait_for(lambda: (rec / "s.mp4.tmp").exists() and
                    os.path.getsize(rec / "s.mp4.tmp") > 50000, timeout=20)
    srv.proc.send_signal(signal.SIGTERM)
    srv.proc.wait(20)
    pub.stop()
    assert not (rec / "s.mp4.tmp").exists()
    streams, duration = probe(rec / "s.mp4")
    assert streams == [("audio", "aac"), ("video", "h264")] and duration > 0.5
    assert [body["file"] for _, _, body in hook_server.calls] == [str(rec / "s.mp4")]
