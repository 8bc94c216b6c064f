"""DVR plans (SRS's session and segment), sans-IO: media in, file actions out.

Rules (this module owns them):
- `build_path(template, vhost, app, stream, now, utc)` expands SRS's variables: [vhost] [app]
  [stream] and the time ones [2006] [01] [02] [15] [04] [05] [999] [timestamp] (ms since the
  epoch). A template not ending in .flv or .mp4 is a directory: `/[stream].[timestamp].flv`
  is appended (SRS). The extension picks the container: .mp4 -> MP4, else FLV.
- `DvrPlan(conf, vhost, app, stream)`: `on_publish(now)`, `feed(type_id, ts, payload,
  is_keyframe, now)`, `on_unpublish()` return actions (on_publish raises DvrPathError when the
  app or stream name would leave dvr_path's directory: `..` segments, absolute):
  ("open", path) a new file begins (the caller writes it under a temporary name);
  ("write", bytes); ("close", tail, patches, duration_ms) the file is complete.
- session plan: one file per publish, closed at unpublish. segment plan: when the file holds
  dvr_duration seconds, it is closed before the next video keyframe (dvr_wait_keyframe on), or
  before the next message (off), and a new file starts with metadata and sequence headers.
- Each file gets its own time_jitter corrector (full/zero: it starts at 0; off: timestamps as
  received); metadata and sequence headers are written at timestamp 0 at a file's start.
- Until the first video keyframe of a publish (or of a segment, with dvr_wait_keyframe) video
  frames are not written, so every file starts decodable. Audio before it is kept.
- `write_failed(now)`: the caller lost the open file (a write failed, the partial file is
  gone). Nothing is written until a new file opens, with metadata and sequence headers, at
  the first keyframe (audio frame, for a stream without video) at least RETRY_AFTER seconds
  after the failure: a full disk is tried again about once per GOP, and the recording goes
  on by itself once space returns. A publish or unpublish forgets a pending retry.
"""
import struct

from lib.media import flv
from lib.media.jitter import Jitter
from lib.media.mp4 import Mp4Muxer
from lib.media.variables import expand, time_values, unsafe
from lib.rtmp import amf0


class DvrPathError(ValueError):
    pass


def build_path(template, vhost, app, stream, now, utc=False):
    """The file path for a recording; DvrPathError if a name would move it (`..`, absolute)."""
    for what, value in (("vhost", vhost), ("app", app), ("stream", stream)):
        if unsafe(value):
            raise DvrPathError(f"{what} {value!r} cannot be part of a file path")
    if not template.endswith((".flv", ".mp4")):
        template = template.rstrip("/") + "/[stream].[timestamp].flv"
    names = {"vhost": vhost, "app": app, "stream": stream, **time_values(now, utc)}
    return expand(template, names)


ON_METADATA = amf0.encode("onMetaData")


class FlvFile:
    """FLV container with the same interface as Mp4Muxer. As SRS, the file's first onMetaData
    gets `duration` and `filesize` numbers that finish() patches with the real values."""

    def __init__(self):
        self.offset = 0
        self.patch_at = {}          # "duration"/"filesize" -> file offset of its 8-byte double
        self.first_ts = self.last_ts = None

    def header(self):
        data = flv.file_header()
        self.offset += len(data)
        return data

    def write(self, type_id, timestamp, payload):
        if type_id == flv.TAG_SCRIPT and not self.patch_at and \
                bytes(payload[:len(ON_METADATA)]) == ON_METADATA:
            payload = self._metadata(payload)
        elif type_id in (flv.TAG_AUDIO, flv.TAG_VIDEO):
            if self.first_ts is None:
                self.first_ts = timestamp
            self.last_ts = timestamp
        data = flv.tag(type_id, timestamp, payload)
        self.offset += len(data)
        return data

    def _metadata(self, payload):
        try:
            values = amf0.decode_all(bytes(payload))
        except amf0.AmfError:
            return payload
        if len(values) < 2 or not isinstance(values[1], dict):
            return payload
        meta = values[1]
        meta = type(meta)({k: v for k, v in meta.items() if k not in ("duration", "filesize")})
        meta["duration"] = 0.0
        meta["filesize"] = 0.0
        payload = amf0.encode("onMetaData", meta, *values[2:])
        for name in ("duration", "filesize"):
            key = len(name).to_bytes(2, "big") + name.encode() + b"\x00"   # key, number marker
            pos = payload.rfind(key)
            self.patch_at[name] = self.offset + 11 + pos + len(key)       # 11: tag header
        return payload

    def finish(self):
        if not self.patch_at:
            return b"", []
        span = 0 if self.first_ts is None else self.last_ts - self.first_ts
        values = {"duration": span / 1000.0, "filesize": float(self.offset)}
        return b"", [(at, struct.pack(">d", values[name])) for name, at in self.patch_at.items()]


class DvrPlan:
    RETRY_AFTER = 1.0          # seconds after a failed write before a new file is tried

    def __init__(self, conf, vhost, app, stream, utc=False):
        self.conf = conf
        self.vhost, self.app, self.stream = vhost, app, stream
        self.utc = utc
        self.segmented = conf.dvr_plan == "segment"
        self.duration_ms = conf.dvr_duration * 1000
        self.metadata = self.video_sh = self.audio_sh = None
        self.file = None           # FlvFile | Mp4Muxer while a file is open
        self.path = None
        self.jitter = None
        self.first_ts = self.last_ts = None
        self.first_raw = None      # first A/V timestamp of the file as received (cut decisions)
        self.need_key = True
        self.files = 0
        self.retry_at = None       # set while the file was lost: when a new one may open

    # ------------------------------------------------------------------ events
    def on_publish(self, now):
        self.retry_at = None
        actions = self._close()
        self.metadata = self.video_sh = self.audio_sh = None
        self.need_key = True
        return actions + self._open(now)

    def on_unpublish(self):
        self.retry_at = None
        return self._close()

    def write_failed(self, now):
        """The open file is lost (see the module rules)."""
        self.file = None
        self.retry_at = now + self.RETRY_AFTER

    def feed(self, type_id, ts, payload, is_keyframe, now, is_sequence_header=None):
        """One message; the server passes its media facts (`is_keyframe`, `is_sequence_header`,
        lib/media/frame.py), a caller without them lets the sequence-header fact be read here."""
        if is_sequence_header is None:
            is_sequence_header = (flv.is_video_sequence_header(payload) if type_id == flv.TAG_VIDEO
                                  else type_id == flv.TAG_AUDIO
                                  and flv.is_audio_sequence_header(payload))
        if type_id == flv.TAG_VIDEO and is_sequence_header:
            is_keyframe = False
            self.video_sh = (type_id, payload)
        elif type_id == flv.TAG_AUDIO and is_sequence_header:
            self.audio_sh = (type_id, payload)
        elif type_id == flv.TAG_SCRIPT and bytes(payload[:len(ON_METADATA)]) == ON_METADATA:
            self.metadata = (type_id, payload)      # not onCuePoint & co: they are not headers
        actions = []
        if self.segmented and self._segment_full(type_id, ts, is_keyframe):
            actions += self._close()
            actions += self._open(now, headers=True)
            self.need_key = self.conf.dvr_wait_keyframe
        if self.file is None and self._may_resume(type_id, is_keyframe, is_sequence_header, now):
            actions += self._open(now, headers=True)
            self.need_key = True
        if self.file is None:
            return actions
        if type_id == flv.TAG_VIDEO and not is_sequence_header:
            if self.need_key and not is_keyframe:
                return actions
            self.need_key = False
        if type_id in (flv.TAG_AUDIO, flv.TAG_VIDEO):
            if self.first_raw is None:
                self.first_raw = ts
            ts = self.jitter.correct(ts)
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
        else:
            ts = 0
        data = self.file.write(type_id, ts, payload)
        if data:
            actions.append(("write", data))
        return actions

    def _may_resume(self, type_id, is_keyframe, is_sequence_header, now):
        if self.retry_at is None or now < self.retry_at or is_sequence_header:
            return False
        if type_id == flv.TAG_VIDEO and is_keyframe or \
                type_id == flv.TAG_AUDIO and self.video_sh is None:
            self.retry_at = None
            return True
        return False

    def _segment_full(self, type_id, ts, is_keyframe):
        if self.file is None or self.duration_ms <= 0 or self.first_raw is None:
            return False
        if type_id not in (flv.TAG_AUDIO, flv.TAG_VIDEO) or ts - self.first_raw < self.duration_ms:
            return False
        return not self.conf.dvr_wait_keyframe or (type_id == flv.TAG_VIDEO and is_keyframe)

    # ------------------------------------------------------------------ files
    def _open(self, now, headers=False):
        self.path = build_path(self.conf.dvr_path, self.vhost, self.app, self.stream, now,
                               self.utc)
        self.file = Mp4Muxer() if self.path.endswith(".mp4") else FlvFile()
        self.jitter = Jitter(self.conf.time_jitter)
        self.first_ts = self.last_ts = self.first_raw = None
        self.files += 1
        data = [self.file.header()]
        if headers:
            for item in (self.metadata, self.video_sh, self.audio_sh):
                if item is not None:
                    data.append(self.file.write(item[0], 0, item[1]))
        return [("open", self.path), ("write", b"".join(data))]

    def _close(self):
        if self.file is None:
            return []
        tail, patches = self.file.finish()
        duration = 0 if self.first_ts is None else self.last_ts - self.first_ts
        self.file = None
        return [("close", tail, patches, duration)]
