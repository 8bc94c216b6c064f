"""Nothing lost (issue 14, defects 1-3): a player attached before the media gets every video
frame published after it attached, whatever data messages, republishes or departures happen.

Real server process, our own test RTMP client as publisher and player (hand-made H.264-shaped
payloads, so the counts are exact), media sent faster than real time.
"""
import threading
import time


from lib.rtmp import amf0
from tests.conftest import wait_for
from tests.rtmpclient import RtmpTestClient, timestamp_regressions

CONF = """
listen {port};
srs_log_tank console;
vhost __defaultVhost__ { }
"""
VIDEO_SH = bytes([0x17, 0x00, 0, 0, 0]) + bytes([1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 0, 0x01, 0])
AUDIO_SH = bytes([0xAF, 0x00, 0x12, 0x10])


def video_frame(n, key):
    """An AVC NALU message whose payload carries its frame number (counted by the player)."""
    return bytes([0x17 if key else 0x27, 0x01, 0, 0, 0]) + n.to_bytes(4, "big") + b"\x00" * 200


def audio_frame():
    return bytes([0xAF, 0x01]) + b"\x21" * 100


def metadata(**fields):
    """onMetaData (our test client's send_media puts `@setDataFrame` in front, as ffmpeg)."""
    return amf0.encode("onMetaData", amf0.EcmaArray(fields or {"width": 320.0}))


def frame_numbers(media):
    return [int.from_bytes(p[5:9], "big") for t, _, p in media
            if t == 9 and len(p) >= 9 and p[1] == 0x01]


class Reader(threading.Thread):
    """A player reading in the background until told to stop."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.stop_at = None

    def run(self):
        c = self.client
        c.pump_until(lambda: self.stop_at is not None and time.time() >= self.stop_at, 120)


def start_player(url):
    player = RtmpTestClient(url)
    assert player.pump_until(lambda: player.session.state == "connected")
    assert player.play()
    reader = Reader(player)
    reader.start()
    return player, reader


def finish(reader, want, seconds=15):
    """Let the player read until it has `want` frames (or `seconds` pass)."""
    wait_for(lambda: len(frame_numbers(reader.client.media)) >= want, seconds)
    reader.stop_at = time.time() + 0.3
    reader.join(30)
    return frame_numbers(reader.client.media)


def publisher(url):
    pub = RtmpTestClient(url)
    assert pub.pump_until(lambda: pub.session.state == "connected")
    assert pub.publish()
    return pub


def test_mid_stream_data_messages_lose_no_media(server_factory):
    """Defect 1: onMetaData re-sent every 200 ms (and onCuePoint/onTextData) after half the
    stream. Before the fix the data messages went into the shared log at timestamp 0, so a
    caught-up player looked queue_length behind and was shed: 1362 of 1500 frames."""
    srv = server_factory(CONF)
    url = srv.url("live/data")
    player, reader = start_player(url)
    pub = publisher(url)
    pub.send_media(18, 0, metadata(width=320.0))
    pub.send_media(9, 0, VIDEO_SH)
    pub.send_media(8, 0, AUDIO_SH)
    for n in range(1500):
        ts = n * 40
        pub.send_media(9, ts, video_frame(n, n % 50 == 0))
        pub.send_media(8, ts, audio_frame())
        if n >= 750 and n % 5 == 0:
            pub.send_media(18, ts, metadata(width=float(n)))
        if n >= 750 and n % 50 == 25:
            pub.send_media(18, ts, amf0.encode("onCuePoint", {"name": f"cue{n}"}))
            pub.send_media(18, ts, amf0.encode("onTextData", {"text": f"t{n}"}))
        if n % 25 == 0:
            time.sleep(0.03)               # ~30x real time: the player keeps up
    got = finish(reader, 1500)
    assert got == list(range(1500)), f"player got {len(got)} of 1500 frames"
    assert timestamp_regressions(player.media) == 0
    # data messages travel in order; cue points reach the player
    names = [amf0.decode_all(p)[0] for t, _, p in player.media if t == 18]
    assert "onCuePoint" in names and "onTextData" in names
    # only onMetaData replaces the cached metadata: a new player's metadata is the last one
    late = RtmpTestClient(url)
    assert late.pump_until(lambda: late.session.state == "connected")
    assert late.play()
    assert late.pump_until(lambda: any(t == 9 for t, _, _ in late.media))
    first_data = [amf0.decode_all(p) for t, _, p in late.media if t == 18]
    assert [v[0] for v in first_data] == ["onMetaData"], "a new player gets only the metadata"
    assert first_data[0][1]["width"] == 1495.0, first_data
    pub.close()
    player.close()
    late.close()


def test_republish_storm_loses_no_media(server_factory):
    """Defect 2: 300 publish/unpublish cycles of one stream back to back, each one short GOP
    starting with a keyframe. Before the fix a connected player got 785 of 1500 frames."""
    srv = server_factory(CONF)
    url = srv.url("live/storm")
    player, reader = start_player(url)
    n = 0
    for cycle in range(300):
        pub = publisher(url)
        pub.send_media(18, 0, metadata())
        pub.send_media(9, 0, VIDEO_SH)
        pub.send_media(8, 0, AUDIO_SH)
        for i in range(5):
            pub.send_media(9, i * 40, video_frame(n, i == 0))
            pub.send_media(8, i * 40, audio_frame())
            n += 1
        pub.session.close_stream()
        pub.sock.sendall(pub.session.data_to_send())
        pub.close()
    got = finish(reader, 1500, seconds=30)
    lost = sorted(set(range(1500)) - set(got))
    assert len(got) == 1500 and not lost, f"player got {len(got)} of 1500; lost {lost[:20]}..."
    assert timestamp_regressions(player.media) == 0
    player.close()


def test_merged_read_loses_no_media(server_factory):
    """SRS's merged read (`publish { mr on; }`): the publisher's socket is read in pauses of
    mr_latency; every frame still reaches the player, in order, data messages included, and
    nothing published is held back by the pauses."""
    srv = server_factory(CONF.replace("vhost __defaultVhost__ { }",
                                      "vhost __defaultVhost__ { publish { mr on; mr_latency 100; } }"))
    url = srv.url("live/mr")
    player, reader = start_player(url)
    pub = publisher(url)
    pub.send_media(9, 0, VIDEO_SH)
    pub.send_media(8, 0, AUDIO_SH)
    for n in range(600):
        pub.send_media(9, n * 40, video_frame(n, n % 50 == 0))
        pub.send_media(8, n * 40, audio_frame())
        if n % 100 == 50:
            pub.send_media(18, n * 40, amf0.encode("onCuePoint", {"name": f"cue{n}"}))
        if n % 10 == 0:
            time.sleep(0.02)
    got = finish(reader, 600)
    assert got == list(range(600)), f"player got {len(got)} of 600 frames"
    assert sum(1 for t, _, p in player.media if t == 18 and b"onCuePoint" in p) == 6
    pub.close()
    player.close()
