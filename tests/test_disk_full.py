"""A full disk under HLS and DVR (issue 20, point 9).

Black box: a real server writes HLS and DVR onto a small tmpfs (mounted here, unmounted in
teardown; skipped when mounting is not allowed) while real ffmpeg publishes; a filler keeps the
disk full, then frees it. Checked: no temp file survives a failed write, the playlist stays
valid and lists only complete segments, one log line per stream and sink (not one per
segment), and once space returns the next segment lands and the playlist advances with a
discontinuity; the DVR resumes into a new file. The same for HLS in process with an injected
ENOSPC (no root needed). Sans-IO units: WriteFailures (when to log), Segmenter.write_failed
(what the playlist lists, under any pattern of failures), DvrPlan.write_failed (when a new
file starts), and the file helpers (no temp file left, O_EXCL, no replacing).
"""
import json
import os
import re
import subprocess
import threading
import time
import urllib.request

import m3u8
import pytest

from lib.media import flv

from tests.conftest import free_port, need_tool, wait_for, wait_port
from tests.test_hls import NOW, Disk, new_synth, synth
from tests.test_ts import avc_sh

# ---------------------------------------------------------------- black box
CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen API; }
vhost __defaultVhost__ {
    hls { enabled on; hls_path DISK/hls; hls_fragment 2; hls_window 8; hls_dispose 2; }
    dvr { enabled on; dvr_plan session; dvr_path DISK/dvr/[stream].[timestamp].flv; }
}
"""


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs (root only; else skipped)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


class Filler:
    """Keeps a filesystem full, as another process would, until stopped; then frees it."""

    def __init__(self, directory):
        self.path = directory / "filler"
        self.running = True
        self.f = open(self.path, "wb", buffering=0)
        self.top_up()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def top_up(self):
        chunk = b"\0" * 65536
        while True:
            try:
                self.f.write(chunk)
            except OSError:
                if len(chunk) == 512:
                    return
                chunk = chunk[:len(chunk) // 2]

    def _run(self):
        while self.running:
            self.top_up()
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.f.close()
        os.unlink(self.path)


def temp_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))


def api_stream(api):
    with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/v1/streams", timeout=5) as r:
        streams = json.load(r)["streams"]
    return next((s for s in streams if s["name"] == "livestream"), None)


def frames(api):
    stream = api_stream(api)
    return stream["frames"] if stream and stream["publish"]["active"] else 0


def load_playlist(path):
    """The playlist if it parses and every segment it lists is a complete file, else None."""
    try:
        text = path.read_text()
    except OSError:
        return None
    pl = m3u8.loads(text)
    if not text.startswith("#EXTM3U") or not pl.segments:
        return None
    for n, seg in enumerate(pl.segments):
        number = int(re.search(r"-(\d+)\.ts$", seg.uri).group(1))
        assert number == pl.media_sequence + n, f"segment numbers skip: {text}"
        segment = path.parent / seg.uri
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                              "-of", "csv=p=0", str(segment)],
                             capture_output=True, text=True, timeout=30)
        if out.returncode and not segment.exists() and seg.uri not in path.read_text():
            continue                        # it left the window (hls_cleanup) while we read
        assert out.stderr == "" and set(out.stdout.split()) == {"aac", "h264"}, \
            f"{seg.uri} listed but not complete: {out.stderr}"
    return pl


def test_full_disk_leaves_no_temp_files_and_recovers(small_disk, server_factory,
                                                     publisher_factory, media_file):
    need_tool("ffprobe")
    api = free_port()
    srv = server_factory(CONF.replace("DISK", str(small_disk)).replace("API", str(api)))
    wait_port(api)
    m3u8_path = small_disk / "hls" / "live" / "livestream.m3u8"
    pub = publisher_factory(srv.url(), media_file)
    before = wait_for(lambda: (pl := load_playlist(m3u8_path)) and len(pl.segments) >= 2 and pl,
                      timeout=30, interval=0.3)
    assert before, srv.log_text()

    filler = Filler(small_disk)
    try:
        start = frames(api)
        # 8 s of media published onto the full disk: four segment cuts, DVR writes each tick
        assert wait_for(lambda: frames(api) >= start + 200, timeout=30), srv.log_text()
        assert pub.alive()
        # what failed left nothing behind (a retry may hold a temp file for a moment)
        assert wait_for(lambda: not temp_files(small_disk), timeout=5), temp_files(small_disk)
        full = load_playlist(m3u8_path)
        assert full is not None and full.media_sequence >= before.media_sequence
        log = srv.log_text()
        hls_lines = [x for x in log.splitlines() if "hls" in x and "No space left" in x]
        dvr_lines = [x for x in log.splitlines() if "dvr" in x and "No space left" in x]
        assert len(hls_lines) == 1 and len(dvr_lines) == 1, log
        assert "free" in hls_lines[0] and "free" in dvr_lines[0]
        stream = api_stream(api)
        assert stream["hls"]["write_errors"] >= 2 and stream["dvr"]["write_errors"] >= 1
        last_full = int(re.search(r"-(\d+)\.ts$", full.segments[-1].uri).group(1))
    finally:
        filler.stop()

    # space is back: the next segment lands, numbered on, after a discontinuity
    def advanced():
        pl = load_playlist(m3u8_path)
        return pl if pl and pl.segments[-1].uri != full.segments[-1].uri else None
    after = wait_for(advanced, timeout=20, interval=0.3)
    assert after, srv.log_text()
    uris = [s.uri for s in after.segments]
    first_new = next(s for s in after.segments
                     if int(re.search(r"-(\d+)\.ts$", s.uri).group(1)) > last_full)
    assert first_new.uri == f"livestream-{last_full + 1}.ts", uris
    assert first_new.discontinuity, after.dumps()
    # the DVR records again, into a new file; 3 s of media go into it
    assert wait_for(lambda: (api_stream(api)["dvr"] or {}).get("file"), timeout=20)
    resumed = frames(api)
    assert wait_for(lambda: frames(api) >= resumed + 75, timeout=20)
    pub.stop()
    assert wait_for(lambda: not api_stream(api) or not api_stream(api)["dvr"]["recording"],
                    timeout=10)
    assert wait_for(lambda: not temp_files(small_disk), timeout=10), temp_files(small_disk)
    recordings = sorted((small_disk / "dvr").glob("livestream.*.flv"))
    assert recordings, os.listdir(small_disk / "dvr")
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "csv=p=0", str(recordings[-1])],
                         capture_output=True, text=True, timeout=30)
    assert out.stderr == "" and float(out.stdout) > 1.0
    # hls_dispose 2: the stream's HLS files go, and no temp file stays behind
    assert wait_for(lambda: not os.listdir(m3u8_path.parent), timeout=10), \
        os.listdir(m3u8_path.parent)



# ---------------------------------------------------------------- in process, injected ENOSPC
class NoSpace:
    """Stands in for `open` in lib/server/core/files.py while `full`: files open, and a write
    puts half its bytes on disk, then fails as a full disk does."""

    def __init__(self):
        self.full = False
        self.failed = 0

    def __call__(self, path, mode="r", *args, **kw):
        f = open(path, mode, *args, **kw)
        if not self.full:
            return f
        spy = self

        class Half:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, data):
                f.write(data[:len(data) // 2])
                spy.failed += 1
                raise OSError(28, "No space left on device")

            def close(self):
                f.close()
        return Half()


def test_injected_enospc_in_process_leaves_no_temp_file_and_recovers(tmp_path, monkeypatch,
                                                                     media_file):
    """The same story as the tmpfs test, without root: the HLS sink on a disk whose writes fail
    (lib/server/core/files.open replaced)."""
    import gevent

    from lib.server.core import files
    from tests.test_hls_live import KEY, Harness
    media = media_file.read_bytes()
    no_space = NoSpace()
    monkeypatch.setattr(files, "open", no_space, raising=False)
    h = Harness(tmp_path, hls_window=30)

    def until(predicate, timeout=10):
        deadline = time.time() + timeout
        while not predicate() and time.time() < deadline:
            gevent.sleep(0.02)
        return predicate()
    src, owner = h.publish(media, until=4100)               # segments 0, 1
    assert until(lambda: "livestream.m3u8" in h.files() and len(h.playlist().segments) == 2)
    before = h.playlist().dumps()
    no_space.full = True
    for tag_type, ts, payload in flv.iter_tags(media):      # 4.1 .. 8.1 s: two cuts fail
        if 4100 <= ts < 8100:
            src.on_media(tag_type, ts, payload)
    temps = lambda: [f for f in h.files() if f.endswith(".tmp")]   # noqa: E731
    assert until(lambda: no_space.failed == 2 and not temps()), (no_space.failed, h.files())
    assert h.playlist().dumps() == before
    no_space.full = False
    for tag_type, ts, payload in flv.iter_tags(media):
        if ts >= 8100:
            src.on_media(tag_type, ts, payload)
    src.on_unpublish(owner)
    h.settle()
    pl = h.playlist()
    assert [s.uri for s in pl.segments] == [f"livestream-{n}.ts" for n in range(4)]
    assert [s.discontinuity for s in pl.segments] == [False, False, True, False]
    assert not temps()
    log = h.log_text()
    assert len([x for x in log.splitlines() if "No space left" in x]) == 1, log
    assert "writes work again (2 failed in a row before)" in log
    assert h.plugin.sinks[KEY].describe()["write_errors"] == 2

# ---------------------------------------------------------------- sans-IO: WriteFailures
def test_write_failures_say_one_line_a_minute_and_one_when_writes_work_again():
    from lib.media.write_failures import WriteFailures
    w = WriteFailures("hls v/live/s")
    first = w.failed(100.0, "write a.ts: No space left on device", 4096)
    assert first.startswith("hls v/live/s: write a.ts: No space left on device; 4.0 KiB free")
    assert [w.failed(100.0 + t, "write b.ts: No space", 0) for t in range(2, 60, 2)] == \
        [None] * 29
    again = w.failed(160.0, "write c.ts: No space", 0)
    assert "write c.ts" in again and "(30 failed writes since the last line)" in again
    assert w.describe() == {"write_errors": 31, "last_error": "write c.ts: No space",
                            "failing": True}
    assert w.succeeded(161.0) == "hls v/live/s: writes work again (31 failed in a row before)"
    assert w.succeeded(162.0) is None and not w.describe()["failing"]


def test_write_failures_that_flap_stay_bounded():
    """Fail, work, fail, work... every 2 s: still one failure line (and its 'work again') per
    minute, not one per segment."""
    from lib.media.write_failures import WriteFailures
    w = WriteFailures("dvr v/live/s")
    lines = []
    for n in range(60):                       # two minutes
        lines.append(w.failed(n * 2.0, "write x: No space", None))
        lines.append(w.succeeded(n * 2.0 + 1))
    said = [x for x in lines if x]
    assert len(said) == 4 and "unknown free" in said[0]
    assert w.describe()["write_errors"] == 60


# ---------------------------------------------------------------- sans-IO: Segmenter


class FullDisk(Disk):
    """Runs segmenter actions as the sink does (module rules of lib/media/hls.py): a write that
    `full(path)` refuses leaves no file; the rest of the list is skipped and what
    write_failed(path) returns is run instead. After every list the playlist on disk must be
    valid: parseable, numbers that never skip, every listed file present."""

    def __init__(self, root, seg):
        super().__init__(root)
        self.seg = seg
        self.full = lambda path: False
        self.failed = []

    def apply(self, actions):
        actions = list(actions)
        while actions:
            action = actions.pop(0)
            if action[0] == "write" and self.full(action[1]):
                self.failed.append(action[1])
                if hasattr(self.seg, "write_failed"):
                    actions = self.seg.write_failed(action[1])
                continue                    # (before write_failed: the sink went on)
            super().apply([action])
        self.check()

    def check(self):
        path = self.path("live/livestream.m3u8")
        if not os.path.exists(path):
            return
        pl = self.playlist()
        for n, seg in enumerate(pl.segments):
            assert int(re.search(r"-(\d+)\.(ts|m4s)$", seg.uri).group(1)) == \
                pl.media_sequence + n, open(path).read()
            assert os.path.exists(self.path("live/" + seg.uri)), seg.uri
            if seg.init_section is not None:
                assert os.path.exists(self.path("live/" + seg.init_section.uri))


def full_disk_synth(tmp_path, **kw):
    seg, _ = new_synth(tmp_path / "unused", **kw)
    disk = FullDisk(tmp_path, seg)
    return seg, disk


def test_a_segment_that_cannot_be_written_is_never_listed(tmp_path):
    seg, disk = full_disk_synth(tmp_path, hls_window=7.0)
    synth(seg, disk, 0, 10040, key_every=2000)              # segments 0..4, window 2, 3, 4
    listed = disk.playlist().dumps()
    files = sorted(os.listdir(tmp_path / "live"))
    disk.full = lambda path: True
    synth(seg, disk, 10040, 16040, key_every=2000)          # two cuts fail
    assert disk.failed == [f"live/livestream-{n}.ts" for n in (5, 5)]
    assert disk.playlist().dumps() == listed                # old segments stay listed
    assert sorted(os.listdir(tmp_path / "live")) == files   # and on disk
    disk.full = lambda path: False                          # space is back
    synth(seg, disk, 16040, 20040, key_every=2000)
    pl = disk.playlist()
    assert [s.uri for s in pl.segments] == ["livestream-4.ts", "livestream-5.ts",
                                            "livestream-6.ts"]
    assert [s.discontinuity for s in pl.segments] == [False, True, False]
    assert sorted(os.listdir(tmp_path / "live")) == \
        ["livestream-4.ts", "livestream-5.ts", "livestream-6.ts", "livestream.m3u8"]


def test_a_playlist_that_cannot_be_written_takes_its_segment_back(tmp_path):
    seg, disk = full_disk_synth(tmp_path, hls_window=60.0)
    synth(seg, disk, 0, 4040, key_every=2000)               # segments 0, 1
    disk.full = lambda path: path.endswith(".m3u8")
    synth(seg, disk, 4040, 6080, key_every=2000)            # segment 2 written, playlist not
    assert disk.failed == ["live/livestream.m3u8"]
    assert not os.path.exists(tmp_path / "live" / "livestream-2.ts")
    assert [s.seq for s in seg.window] == [0, 1]
    disk.full = lambda path: False
    seg_unpublished = seg.on_unpublish()
    disk.apply(seg_unpublished)
    pl = disk.playlist()
    assert [s.uri for s in pl.segments][-1] == "livestream-2.ts"
    assert pl.segments[-1].discontinuity


def test_unpublish_on_a_full_disk_then_republish(tmp_path):
    seg, disk = full_disk_synth(tmp_path, hls_window=60.0)
    synth(seg, disk, 0, 4040, key_every=2000)
    disk.full = lambda path: True
    disk.apply(seg.on_unpublish())                          # the last cut is lost
    assert seg.next_seq == 2
    disk.full = lambda path: False
    disk.apply(seg.on_publish())
    disk.apply(seg.feed(flv.TAG_VIDEO, 10000, avc_sh(), True, NOW))
    synth(seg, disk, 10000, 12040, key_every=2000)
    pl = disk.playlist()
    assert [s.uri for s in pl.segments] == [f"livestream-{n}.ts" for n in range(3)]
    assert [s.discontinuity for s in pl.segments] == [False, False, True]


@pytest.mark.parametrize("fmp4", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_random_write_failures_keep_every_playlist_valid(tmp_path, seed, fmp4):
    """Any pattern of failed writes (segment, init, playlist): after every list of actions
    the playlist on disk is valid (FullDisk.check); when writes work again, segments land."""
    import random
    rnd = random.Random(seed)
    seg, disk = full_disk_synth(tmp_path, hls_window=7.0, hls_use_fmp4=fmp4)
    disk.full = lambda path: rnd.random() < 0.4
    synth(seg, disk, 0, 60040, key_every=2000)
    assert disk.failed
    disk.full = lambda path: False
    synth(seg, disk, 60040, 66040, key_every=2000)
    disk.apply(seg.on_unpublish())
    pl = disk.playlist()
    assert len(pl.segments) >= 3
    listed = {"live/" + s.uri for s in pl.segments}
    if fmp4:
        listed |= {"live/" + s.init_section.uri for s in pl.segments}
    on_disk = {str(p.relative_to(tmp_path)) for p in (tmp_path / "live").rglob("*")
               if p.is_file()} - {"live/livestream.m3u8"}
    assert on_disk == listed                                # nothing left over either


# ---------------------------------------------------------------- sans-IO: DvrPlan
def test_dvr_plan_resumes_in_a_new_file_at_a_keyframe_after_a_failure():
    from lib.media import flv
    from lib.media.dvr import DvrPlan
    from tests.test_dvr_units import dvr_conf, stream
    plan = DvrPlan(dvr_conf(dvr_path="/r/[stream].[timestamp].flv"), "v", "live", "s")
    assert plan.on_publish(1000.0)[0] == ("open", "/r/s.1000000.flv")
    items = stream(8)
    for t, ts, p, key in items[:60]:                        # 0 .. ~1.3 s
        plan.feed(t, ts, p, key, 1000.0 + ts / 1000)
    plan.write_failed(1001.3)
    seen = []
    for t, ts, p, key in items[60:]:
        for action in plan.feed(t, ts, p, key, 1000.0 + ts / 1000):
            seen.append((action[0], ts))
    # nothing until the first keyframe RETRY_AFTER (1 s) after the failure: 4 s (2 s GOP)
    assert seen[0] == ("open", 4000) and seen[1] == ("write", 4000)
    assert plan.path == "/r/s.1004000.flv"
    opened = plan.feed(flv.TAG_VIDEO, 8000, items[1][2], True, 1008.0)   # a header: no effect
    assert opened == [] or opened[0][0] == "write"
    # the new file starts with metadata and sequence headers
    plan2 = DvrPlan(dvr_conf(dvr_path="/r/[stream].flv"), "v", "live", "s")
    plan2.on_publish(0.0)
    for t, ts, p, key in items[:3]:
        plan2.feed(t, ts, p, key, 0.0)
    plan2.write_failed(0.0)
    actions = plan2.feed(flv.TAG_VIDEO, 2000, items[3][2], True, 2.0)
    head = actions[1][1]
    assert actions[0] == ("open", "/r/s.flv")
    assert head[:3] == b"FLV" and head.count(bytes([flv.TAG_VIDEO])) >= 1 and len(head) > 100


def test_dvr_plan_audio_only_resumes_at_an_audio_frame_and_publish_forgets_the_retry():
    from lib.media import flv
    from lib.media.dvr import DvrPlan
    from tests.test_dvr_units import dvr_conf, stream
    audio_only = [i for i in stream(4) if i[0] != flv.TAG_VIDEO]
    plan = DvrPlan(dvr_conf(dvr_path="/r/[stream].flv"), "v", "live", "s")
    plan.on_publish(0.0)
    for t, ts, p, key in audio_only[:10]:
        plan.feed(t, ts, p, key, ts / 1000)
    plan.write_failed(0.3)
    out = [(a[0], ts) for t, ts, p, key in audio_only[10:]
           for a in plan.feed(t, ts, p, key, ts / 1000)]
    assert out[0][0] == "open" and 1300 <= out[0][1] < 1330
    plan.write_failed(2.0)
    assert plan.on_publish(2.0)[0][0] == "open" and plan.retry_at is None


# ---------------------------------------------------------------- server file helpers
def test_write_atomically_leaves_no_temp_file_when_the_write_fails(tmp_path):
    from lib.server.core.files import write_atomically
    target = tmp_path / "d" / "a.m3u8"
    write_atomically(str(target), b"old")
    with pytest.raises(TypeError):
        write_atomically(str(target), object())            # fails inside the write
    assert target.read_bytes() == b"old" and os.listdir(tmp_path / "d") == ["a.m3u8"]


def test_open_new_is_exclusive_and_finish_new_never_replaces(tmp_path):
    from lib.server.core.files import finish_new, open_new
    path = str(tmp_path / "s.flv")
    name1, f1 = open_new(path)
    name2, f2 = open_new(path)                              # a second recording, same second
    assert (name1, name2) == (path, str(tmp_path / "s-1.flv"))
    f1.write(b"one")
    f2.write(b"two")
    f1.close()
    f2.close()
    (tmp_path / "s.flv").write_bytes(b"appeared meanwhile")
    assert finish_new(name1) == str(tmp_path / "s-2.flv")
    assert (tmp_path / "s.flv").read_bytes() == b"appeared meanwhile"
    assert (tmp_path / "s-2.flv").read_bytes() == b"one"
    assert finish_new(name2) == name2 and (tmp_path / "s-1.flv").read_bytes() == b"two"
    assert sorted(os.listdir(tmp_path)) == ["s-1.flv", "s-2.flv", "s.flv"]
