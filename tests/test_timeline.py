"""Players' timestamps through republishes and the 32-bit wrap (issue 20 point 11).

Real server process, our own test RTMP client as publisher and player (hand-made H.264-shaped
payloads, numbered, so every frame is accounted for), media sent faster than real time.
"""
from tests.conftest import wait_for
from tests.rtmpclient import timestamp_regressions
from tests.test_nothing_lost import (AUDIO_SH, VIDEO_SH, audio_frame, finish, frame_numbers,
                                     publisher, start_player, video_frame)

ZERO = """
listen {port};
srs_log_tank console;
vhost __defaultVhost__ { play { time_jitter zero; } }
"""
WRAP = 1 << 32


def publish_frames(pub, first, count, start_ts, gop=25):
    """`count` numbered video frames (keyframe every `gop`) with audio, 40 ms apart from
    `start_ts`, wrapping at 2^32 as RTMP timestamps do."""
    pub.send_media(9, start_ts % WRAP, VIDEO_SH)
    pub.send_media(8, start_ts % WRAP, AUDIO_SH)
    for i in range(count):
        ts = (start_ts + 40 * i) % WRAP
        pub.send_media(9, ts, video_frame(first + i, i % gop == 0))
        pub.send_media(8, ts, audio_frame())


def video_timestamps(client, first_frame):
    """Timestamps of the numbered video frames from `first_frame` on, in arrival order."""
    return [ts for t, ts, p in client.media
            if t == 9 and len(p) >= 9 and p[1] == 0x01
            and int.from_bytes(p[5:9], "big") >= first_frame]


def test_zero_mode_republish_keeps_a_late_joiner_monotonic(server_factory):
    """Before the fix a republish restarted the source's timeline at 0 in `zero` mode, and a
    player that had joined late (base > 0) got timestamp 0 for every frame until the new
    timeline passed its base."""
    srv = server_factory(ZERO)
    url = srv.url("live/zero")
    probe, probe_reader = start_player(url)
    pub = publisher(url)
    publish_frames(pub, 0, 100, 0)
    wait_for(lambda: max(frame_numbers(probe.media), default=-1) >= 99, 15)
    player, reader = start_player(url)              # the GOP cache starts at frame 75 (3000 ms)
    publish_frames(pub, 100, 50, 4000)
    wait_for(lambda: max(frame_numbers(player.media), default=-1) >= 149, 15)
    pub.session.close_stream()                      # unpublish, then a republish from 0
    pub.sock.sendall(pub.session.data_to_send())
    pub.close()
    pub = publisher(url)
    assert pub.session.state == "publishing"
    publish_frames(pub, 150, 100, 0)
    got = finish(reader, 175)                       # from the GOP at frame 75 on
    assert got == list(range(75, 250)), got
    before, after = video_timestamps(player, 0)[:75], video_timestamps(player, 150)
    assert before[0] == 0 and len(after) == 100
    assert after[0] > before[-1], (before[-3:], after[:3])
    assert timestamp_regressions(player.media) == 0
    assert all(b - a == 40 for a, b in zip(after, after[1:])), after
    pub.close()
    player.close()
    finish(probe_reader, 0)
    probe.close()


def test_zero_mode_publisher_crossing_the_wrap(server_factory):
    """A publisher whose timestamps wrap at 2^32 (49.7 days, or an encoder starting near the
    top): before the fix `zero` mode turned every timestamp after the wrap into 0."""
    srv = server_factory(ZERO)
    url = srv.url("live/wrap")
    player, reader = start_player(url)
    pub = publisher(url)
    publish_frames(pub, 0, 100, WRAP - 2000)        # wraps at frame 50
    got = finish(reader, 100)
    assert got == list(range(100))
    ts = video_timestamps(player, 0)
    assert all(b - a == 40 for a, b in zip(ts, ts[1:])), ts[45:55]
    assert timestamp_regressions(player.media) == 0
    pub.close()
    player.close()
