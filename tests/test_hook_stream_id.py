"""on_unpublish and on_stop carry the stream's stream_id (issue 23 point 9).

SRS 7.0.18 (SrsHttpHooks::on_unpublish / on_stop, srs_app_http_hooks.cpp) sets `stream_id`
from its statistics stream, which outlives the publisher, so on_unpublish names the same
stream_id as on_publish. srsedge looked the id up when the hook ran: the source was gone by
then and on_unpublish had no stream_id.
"""
from tests.conftest import wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_parity import api_streams, hooked_server, hooks  # noqa: F401 (fixture)


def published_id(srv, publisher_factory, media_file, stream):
    """Publish live/<stream> with ffmpeg; (the publisher, the stream's API id) once it is live."""
    pub = publisher_factory(srv.url(f"live/{stream}?token=good"), media_file)
    assert wait_for(lambda: any(s["name"] == stream and s["video"]
                                for s in api_streams(srv.api)), 15)
    return pub, next(s["id"] for s in api_streams(srv.api) if s["name"] == stream)


def test_closing_hooks_name_the_stream_id_of_their_opening_twins(server_factory, media_file,
                                                                  publisher_factory, hooks):
    srv = hooked_server(server_factory, hooks)
    alone, alone_id = published_id(srv, publisher_factory, media_file, "alone")
    alone.stop()                                # no player: the source goes with it
    assert wait_for(lambda: hooks.bodies("on_unpublish"), 10)
    assert hooks.bodies("on_unpublish")[0].get("stream_id") == alone_id
    hooks.calls.clear()
    assert wait_for(lambda: api_streams(srv.api) == [], 10)

    pub, sid = published_id(srv, publisher_factory, media_file, "s")
    viewer = RtmpTestClient(f"rtmp://127.0.0.1:{srv.port}/live/s?token=good")
    assert viewer.play() and viewer.pump_until(lambda: len(viewer.media) > 10, 10)
    pub.stop()                                  # the source goes while the player still plays
    assert wait_for(lambda: hooks.bodies("on_unpublish"), 10)
    viewer.close()
    assert wait_for(lambda: hooks.bodies("on_stop"), 10)
    ids = {action: hooks.bodies(action)[0].get("stream_id")
           for action in ("on_publish", "on_unpublish", "on_play", "on_stop")}
    assert ids == dict.fromkeys(ids, sid)
