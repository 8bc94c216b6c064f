"""HLS segmenter and live playlist with SRS's hls semantics (sans-IO: messages in, actions out).

Rules:
- A Segmenter serves one stream. It is fed (type, ts, payload, is_keyframe, now) and returns a
  list of actions: ("write", path, bytes) for a finished segment and then for the playlist,
  ("delete", path) for segments that left the window (hls_cleanup on) or on dispose, and
  ("warn", text) for something worth one log line (each text once per publish). Paths are
  relative to hls_path; the caller does the IO, in that order. `now` (epoch seconds) only names
  files ([timestamp] and the date variables); nothing here reads a clock.
- Cutting (durations are DTS differences in ms; no cut before 200 ms, as SRS):
  * video: at a keyframe once the segment holds hls_fragment (at any frame with
    hls_wait_keyframe off). A segment that did not begin with a keyframe gains nothing by waiting
    for one: it is cut at hls_td_ratio * hls_fragment (streams without keyframes).
  * audio (pure audio, or A/V with sparse keyframes): at hls_aof_ratio * hls_fragment, as SRS.
  * a sequence header that changes (new codec config, or a stream kind appearing after media)
    closes the segment; the next one starts with #EXT-X-DISCONTINUITY.
  A segment's duration is the DTS of the frame that starts the next segment minus its own first
  DTS; when none follows (unpublish) the last frame interval is added to its last DTS.
- With hls_wait_keyframe on, a video stream's HLS starts at its first keyframe (earlier video and
  audio are skipped), after a republish or a queue drop too; a stream that shows no keyframe
  for hls_td_ratio * hls_fragment starts anyway (and is then cut at that duration).
- Playlist: #EXTM3U, #EXT-X-VERSION:3 (7 with fMP4), #EXT-X-MEDIA-SEQUENCE, #EXT-X-TARGETDURATION =
  ceil(max(longest segment, hls_td_ratio * hls_fragment)) as SRS, then #EXTINF:<d.ddd>, and
  the URI; #EXT-X-DISCONTINUITY before the first segment after a republish, a codec change or
  a drop (and #EXT-X-DISCONTINUITY-SEQUENCE once such a segment has left the window).
- Window: the newest segments whose durations sum to at most hls_window (at least one).
- Names: hls_m3u8_file (and hls_init_file) take [vhost] [app] [stream]; hls_ts_file and
  hls_fmp4_file also [seq] [timestamp] (ms)
  and SRS's date variables [2006] [01] [02] [15] [04] [05] [999]. A name that would leave
  hls_path (`..`, absolute) is refused with HlsError. The URI in the playlist is the segment
  path relative to the playlist's directory, after hls_entry_prefix (a prefix without a
  trailing "/" also gets "/" + the playlist's directory + "/", as SRS).
- hls_vcodec vn / hls_acodec an leave that kind out. Media facts come from lib.media.frame
  (the caller passes the message's Frame, or it is parsed here); a multitrack message gives its
  first track. MPEG-TS segments (the default) carry H.264, H.265 and AAC; with hls_use_fmp4 on
  (SRS 7's directive) segments are fMP4 (hls_fmp4_file, lib.media.fmp4) carrying H.264, H.265,
  AV1, VP9, AAC and Opus. Other codecs are skipped with one warning naming the codec.
- fMP4: the init segment (hls_init_file) is written before the first media segment that needs
  it; when the codec configuration changes, the new init segment gets its own name (the
  template's name with "-<seq>" before its extension) so segments still in the window keep
  theirs. The playlist is version 7 and says #EXT-X-MAP:URI=... before the first segment and
  wherever the init segment changes. Init segments no segment in the window uses are deleted
  with hls_cleanup; dispose deletes them all.
- hls_use_fmp4 is read at each publish; when it changed, the old window and playlist are deleted
  (TS and fMP4 segments never share a playlist) and the new one starts with the next number.
- on_unpublish closes the current segment (writes it and the playlist) and keeps the window;
  dispose() deletes the window's segments and the playlist. When to dispose is the caller's.
- Write failures (a full disk): the caller runs the actions in order; when a write fails it
  removes what it wrote of that file, skips the rest of the list and runs what
  `write_failed(path)` returns. The segment that needed the file is then forgotten as if never
  cut: the window is what it was (its old segments stay listed, their deletes were skipped), a
  segment is never listed unless its file and the playlist naming it were written. Its number
  is given to the next segment (a playlist's numbers never skip, so players keep their place),
  which starts with #EXT-X-DISCONTINUITY (media was lost). A list of actions holds at most one
  segment cut, so the rest of the list is always that cut's.
"""
import math
import posixpath
import re
import time

from lib.media import flv
from lib.media import frame as media_frame
from lib.media.fmp4 import Fmp4Muxer
from lib.media.ts import TsMuxer
from lib.rtmp.errors import ProtocolError

MIN_CUT_MS = 200            # SRS: 2 * SRS_HLS_SEGMENT_MIN_DURATION
_CODED = (media_frame.CODED_FRAMES, media_frame.CODED_FRAMES_X)
_VARS = re.compile(r"\[(vhost|app|stream|seq|timestamp|2006|01|02|15|04|05|999)\]")


class HlsError(ProtocolError):
    """A stream whose HLS file names would leave hls_path."""


class Segment:
    """A closed segment in the playlist window."""
    __slots__ = ("seq", "path", "uri", "duration_ms", "discontinuity", "init")

    def __init__(self, seq, path, uri, duration_ms, discontinuity, init=None):
        self.seq, self.path, self.uri = seq, path, uri
        self.duration_ms, self.discontinuity = duration_ms, discontinuity
        self.init = init             # fMP4: the (path, uri) of its init segment

    def __repr__(self):
        return f"<Segment {self.seq} {self.path} {self.duration_ms}ms>"


class _Open:
    """The segment being filled."""
    __slots__ = ("seq", "path", "uri", "start", "last", "parts", "keyed", "discontinuity",
                 "init", "opened_at")

    def __init__(self, seq, path, uri, start, discontinuity, opened_at):
        self.seq, self.path, self.uri = seq, path, uri
        self.opened_at = opened_at   # `now` when opened: the time variables of its name
        self.start = self.last = start
        self.parts = []
        self.keyed = None            # whether its first video frame is a keyframe (None: no video)
        self.discontinuity = discontinuity
        self.init = None             # fMP4: (path, uri, bytes) of its init segment


def fill_template(template, values):
    return _VARS.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def time_values(now, utc=False):
    """The [timestamp] and date variables for epoch seconds `now`."""
    t = time.gmtime(now) if utc else time.localtime(now)
    return {"timestamp": int(now * 1000), "2006": f"{t.tm_year:04d}", "01": f"{t.tm_mon:02d}",
            "02": f"{t.tm_mday:02d}", "15": f"{t.tm_hour:02d}", "04": f"{t.tm_min:02d}",
            "05": f"{t.tm_sec:02d}", "999": f"{int(now * 1000) % 1000:03d}"}


def safe_path(path):
    """`path` normalized, or HlsError if it would leave hls_path."""
    norm = posixpath.normpath(path)
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or norm == ".":
        raise HlsError(f"HLS path {path!r} leaves hls_path")
    return norm


class Segmenter:
    def __init__(self, conf, vhost, app, stream, start_seq=0, utc=False):
        """`conf` is the vhost's Hls section (lib.config.view.Hls or alike)."""
        self.conf = conf
        self.utc = utc
        self.names = {"vhost": vhost, "app": app, "stream": stream}
        self.m3u8_path = safe_path(fill_template(conf.hls_m3u8_file, self.names))
        self.window = []
        self.next_seq = start_seq
        self.discontinuity_seq = 0   # discontinuities that left the window
        self.fmp4 = bool(getattr(conf, "hls_use_fmp4", False))
        self.muxer = self._new_muxer()
        self.cur = None
        self._init = None            # fMP4: (path, uri, bytes) of the newest init segment
        self._disc = False           # the next segment starts with a discontinuity
        self._cut = None             # the last cut, until a write fails: (segment, expired,
                                     # discontinuities that left the window with them)
        self._reset_publish()

    def _new_muxer(self):
        return Fmp4Muxer() if self.fmp4 else TsMuxer()

    def _reset_publish(self):
        old, self.muxer = self.muxer, self._new_muxer()
        self.muxer.carry_over(old)   # TS continuity counters, fMP4 moof numbers go on
        self._sh = {flv.TAG_VIDEO: None, flv.TAG_AUDIO: None}
        self._ready = {flv.TAG_VIDEO: None, flv.TAG_AUDIO: None}  # codec configured in the muxer
        self._last = {flv.TAG_VIDEO: None, flv.TAG_AUDIO: None}
        self._gap = {flv.TAG_VIDEO: 0, flv.TAG_AUDIO: 0}
        self._frames = 0             # frames muxed in this publish
        self._video_started = False
        self._waiting_since = None   # DTS of the first video frame skipped waiting for a keyframe
        self._warned = set()

    # ------------------------------------------------------------------ events
    def on_publish(self):
        fmp4 = bool(getattr(self.conf, "hls_use_fmp4", False))
        actions = []
        if fmp4 != self.fmp4:        # reloaded: TS and fMP4 segments never share a playlist
            actions = self.dispose()  # (an open segment would only be deleted: not written)
            self.fmp4, self._init = fmp4, None
            self.muxer = self._new_muxer()
        elif self.cur is not None:
            actions = self.on_unpublish()
        self._reset_publish()
        if self.window:
            self._disc = True
        return actions

    def on_unpublish(self):
        return self._close(None) if self.cur is not None else []

    def discontinuity(self):
        """Media was lost (the caller dropped messages): close what we have, restart cleanly at
        the next keyframe with a discontinuity."""
        actions = self._close(None) if self.cur is not None else []
        self._disc = True
        self._video_started = False
        self._waiting_since = None
        return actions

    def write_failed(self, path):
        """The caller could not write `path` (see the module rules): the actions to run instead
        of the rest of its list."""
        cut, self._cut = self._cut, None
        if cut is None:
            return []
        seg, expired, left = cut
        if path not in (seg.path, self.m3u8_path) and (seg.init is None or path != seg.init[0]):
            return []
        self.window.remove(seg)
        self.window[:0] = expired
        self.discontinuity_seq -= left
        cur = self.cur
        if cur is None:
            self._disc = True
            if self.next_seq == seg.seq + 1:
                self.next_seq = seg.seq
        else:                        # the cut opened the next segment: it takes the number
            cur.discontinuity = True
            if cur.seq == seg.seq + 1 == self.next_seq - 1:
                cur.seq, self.next_seq = seg.seq, seg.seq + 1
                cur.path = self._segment_path(seg.seq, cur.opened_at)
                cur.uri = self._uri(cur.path)
        # the segment was written but the playlist naming it was not: it goes too
        return [("delete", seg.path)] if path == self.m3u8_path else []

    def dispose(self):
        """Forget the window; delete its segments and the playlist."""
        actions = [("delete", seg.path) for seg in self.window]
        inits = {seg.init[0] for seg in self.window if seg.init}
        actions += [("delete", path) for path in sorted(inits)]
        actions.append(("delete", self.m3u8_path))
        self.window = []
        self.cur = None
        self.discontinuity_seq = 0
        self._disc = False
        self._cut = None
        return actions

    def feed(self, type_id, ts, payload, is_keyframe, now=0.0, frame=None):
        """One message; `frame` is its lib.media.frame.Frame (parsed here when None)."""
        actions = []
        try:
            if type_id == flv.TAG_VIDEO and self.conf.hls_vcodec != "vn":
                self._video(ts, payload, frame or media_frame.parse_video(payload),
                            is_keyframe, now, actions)
            elif type_id == flv.TAG_AUDIO and self.conf.hls_acodec != "an":
                self._audio(ts, payload, frame or media_frame.parse_audio(payload), now,
                            actions)
        except ProtocolError as e:
            self._warn(actions, f"hls {self.m3u8_path}: {e}, message skipped")
        return actions

    # ------------------------------------------------------------------ media
    def _video(self, ts, payload, frame, key, now, actions):
        if (frame.codec != self._ready[flv.TAG_VIDEO] or frame.packet not in _CODED) and (
                not self._frame_ready(flv.TAG_VIDEO, payload, frame, actions)
                or not frame.is_coded_frame):
            return                   # not a frame (or the end of sequence, metadata...)
        if not self._video_started:
            if self.conf.hls_wait_keyframe and not key:
                if self._waiting_since is None:
                    self._waiting_since = ts
                if ts - self._waiting_since < self._hard_cut_ms():
                    return
            self._video_started = True
            self._waiting_since = None
        cur = self.cur
        if cur is not None:
            duration = ts - cur.start
            if duration >= MIN_CUT_MS:
                conf = self.conf
                if ((duration >= conf.hls_fragment * 1000 and (key or not conf.hls_wait_keyframe))
                        or (not cur.keyed and duration >= self._hard_cut_ms())):
                    actions += self._close(ts)
        data = self.muxer.video(ts, frame.cts, key, frame.data(payload))
        if data is not None:
            cur = self.cur or self._ensure_open(ts, now)
            if cur.keyed is None:
                cur.keyed = key
            self._append(flv.TAG_VIDEO, ts, data)

    def _audio(self, ts, payload, frame, now, actions):
        if (frame.codec != self._ready[flv.TAG_AUDIO] or frame.packet not in _CODED) and (
                not self._frame_ready(flv.TAG_AUDIO, payload, frame, actions)
                or not frame.is_coded_frame):
            return
        if self.muxer.has_video and not self._video_started and self.conf.hls_wait_keyframe:
            return                   # start with the video's first keyframe
        cur = self.cur
        if cur is not None:
            duration = ts - cur.start
            if duration >= MIN_CUT_MS and \
                    duration >= self.conf.hls_aof_ratio * self.conf.hls_fragment * 1000:
                actions += self._close(ts)
        if self.cur is None:
            self._ensure_open(ts, now)
        self._append(flv.TAG_AUDIO, ts, self.muxer.audio(ts, frame.data(payload)))

    def _frame_ready(self, kind, payload, frame, actions):
        """Codec check and sequence headers, for both kinds: True for a frame to mux."""
        if frame.packet == media_frame.OTHER or frame.packet == media_frame.COMMAND:
            return False
        m = self.muxer
        what = "video" if kind == flv.TAG_VIDEO else "audio"
        configured = m.has_video if kind == flv.TAG_VIDEO else m.has_audio
        if not m.supports(what, frame.codec):
            form = "fMP4" if self.fmp4 else "MPEG-TS (hls_use_fmp4 on carries more codecs)"
            self._warn(actions, f"hls {self.m3u8_path}: {what} codec {frame.name or '?'} "
                       f"cannot be carried in HLS {form}, {what} skipped")
        elif frame.is_sequence_header:
            if payload != self._sh[kind]:
                self._ready[kind] = None
                m.configure(what, frame.codec, frame.data(payload))
                self._ready[kind] = frame.codec
                self._codec_changed(kind, payload, actions)
        elif not configured:
            self._warn(actions, f"hls {self.m3u8_path}: {what} before its sequence header skipped")
        else:
            return True
        return False

    def _hard_cut_ms(self):
        return self.conf.hls_td_ratio * self.conf.hls_fragment * 1000

    def _codec_changed(self, kind, payload, actions):
        self._sh[kind] = bytes(payload)
        if self._frames:             # not the first headers of this publish
            if self.cur is not None:
                actions += self._close(None)
            self._disc = True

    def _append(self, kind, ts, data):
        cur = self.cur
        if data:
            cur.parts.append(data)
        if ts > cur.last:
            cur.last = ts
        last = self._last[kind]
        if last is not None and 0 < ts - last < 10000:
            self._gap[kind] = ts - last
        self._last[kind] = ts
        self._frames += 1

    # ------------------------------------------------------------------ segments
    def _ensure_open(self, ts, now):
        if self.cur is None:
            seq = self.next_seq
            path = self._segment_path(seq, now)
            self.next_seq += 1
            self.cur = _Open(seq, path, self._uri(path), ts, self._disc, now)
            self.cur.parts.append(self.muxer.header())
            if self.fmp4:
                self.cur.init = self._init_segment(seq, now)
            self._disc = False
        return self.cur

    def _segment_path(self, seq, now):
        values = dict(self.names, seq=seq, **time_values(now, self.utc))
        template = self.conf.hls_fmp4_file if self.fmp4 else self.conf.hls_ts_file
        return safe_path(fill_template(template, values))

    def _init_segment(self, seq, now):
        """fMP4: (path, uri, bytes) of the init segment for the current configuration."""
        data = self.muxer.init_segment()
        if self._init is not None and self._init[2] == data:
            return self._init
        values = dict(self.names, **time_values(now, self.utc))
        path = safe_path(fill_template(self.conf.hls_init_file, values))
        if self._init is not None:   # a new configuration: a new name, old segments keep theirs
            base, dot, ext = path.rpartition(".")
            path = f"{base}-{seq}.{ext}" if dot and "/" not in ext else f"{path}-{seq}"
        self._init = (path, self._uri(path), data)
        return self._init

    def _uri(self, path):
        m3u8_dir = posixpath.dirname(self.m3u8_path)
        url = posixpath.relpath(path, m3u8_dir or ".")
        prefix = self.conf.hls_entry_prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/" + (m3u8_dir + "/" if m3u8_dir else "")
        return prefix + url

    def _close(self, next_start):
        """Close the open segment; `next_start` is the DTS of the frame starting the next one."""
        cur, self.cur = self.cur, None
        tail = self.muxer.flush()
        if tail:
            cur.parts.append(tail)
        if next_start is not None:
            duration = max(0, next_start - cur.start)
        else:
            video = self._last[flv.TAG_VIDEO]
            kind = flv.TAG_VIDEO if video is not None and video >= cur.start else flv.TAG_AUDIO
            last = self._last[kind] if self._last[kind] is not None else cur.last
            duration = max(0, last - cur.start) + self._gap[kind]
        init = cur.init[:2] if cur.init else None
        seg = Segment(cur.seq, cur.path, cur.uri, duration, cur.discontinuity, init)
        self.window.append(seg)
        left = self.discontinuity_seq
        expired = self._shrink()
        self._cut = (seg, expired, self.discontinuity_seq - left)
        actions = [("write", cur.init[0], cur.init[2])] if cur.init else []
        actions += [("write", cur.path, b"".join(cur.parts)),
                    ("write", self.m3u8_path, self.playlist())]
        if self.conf.hls_cleanup:
            actions += [("delete", seg.path) for seg in expired]
            in_use = {seg.init[0] for seg in self.window if seg.init}
            if self._init is not None:
                in_use.add(self._init[0])
            actions += [("delete", path) for path in
                        sorted({seg.init[0] for seg in expired if seg.init} - in_use)]
        return actions

    def _shrink(self):
        limit = self.conf.hls_window * 1000
        total, keep = 0, 0
        for seg in reversed(self.window):
            total += seg.duration_ms
            if keep and total > limit:
                break
            keep += 1
        expired = self.window[:len(self.window) - keep]
        del self.window[:len(self.window) - keep]
        self.discontinuity_seq += sum(1 for seg in expired if seg.discontinuity)
        return expired

    def playlist(self):
        """The live playlist of the current window, as bytes."""
        longest = max([seg.duration_ms for seg in self.window] or [0])
        target = math.ceil(max(longest, self._hard_cut_ms()) / 1000)
        lines = ["#EXTM3U", "#EXT-X-VERSION:7" if self.fmp4 else "#EXT-X-VERSION:3",
                 f"#EXT-X-MEDIA-SEQUENCE:{self.window[0].seq if self.window else self.next_seq}"]
        if self.discontinuity_seq:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_seq}")
        lines.append(f"#EXT-X-TARGETDURATION:{target}")
        init = None
        for seg in self.window:
            if seg.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if seg.init and seg.init != init:
                init = seg.init
                lines.append(f'#EXT-X-MAP:URI="{init[1]}"')
            lines.append(f"#EXTINF:{seg.duration_ms / 1000:.3f},")
            lines.append(seg.uri)
        return ("\n".join(lines) + "\n").encode()

    # ------------------------------------------------------------------ misc
    def _warn(self, actions, text):
        if text not in self._warned:
            self._warned.add(text)
            actions.append(("warn", text))
