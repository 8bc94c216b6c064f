"""GOP cache (SRS's gop_cache), sans-IO.

Rules: holds the media since the last video keyframe so a new player starts at once with a
decodable picture. A keyframe starts a new GOP (the old one is dropped). Pure-audio streams are
bounded: after too many audio messages with no video the cache restarts. `max_frames` bounds any
GOP (0 = no bound). Sequence headers and metadata are not kept here (the source keeps the latest
of each). Entries are opaque to the cache; the caller passes `is_video`, `is_keyframe`.
"""

PURE_AUDIO_LIMIT = 115  # as SRS: audio messages after the last video before the cache restarts


class GopCache:
    __slots__ = ("enabled", "max_frames", "items", "audio_since_video", "has_keyframe")

    def __init__(self, enabled=True, max_frames=2500):
        self.enabled = enabled
        self.max_frames = max_frames
        self.items = []
        self.audio_since_video = 0
        self.has_keyframe = False

    def add(self, item, is_video, is_keyframe):
        if not self.enabled:
            return
        if is_video:
            self.audio_since_video = 0
            if is_keyframe:
                self.items = []
                self.has_keyframe = True
        else:
            self.audio_since_video += 1
            if self.audio_since_video > PURE_AUDIO_LIMIT:
                self.clear()
        if self.max_frames and len(self.items) >= self.max_frames:
            self.clear()
        self.items.append(item)

    def clear(self):
        self.items = []
        self.audio_since_video = 0
        self.has_keyframe = False
