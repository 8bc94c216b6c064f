"""on_unpublish and on_stop carry the stream's stream_id (issue 23 point 9).

SRS 7.0.18 (SrsHttpHooks::on_unpublish / on_stop, srs_app_http_hooks.cpp) sets `stream_id`
from its statistics stream, which outlives the publisher, so on_unpublish names the same
stream_id as on_publish. srsedge looked the id up when the hook ran: the source was gone by
then and on_unpublish had no stream_id.
"""
from tests.conftest import wait_for
from tests.rtmpclient import RtmpTestClient
from tests.test_parity import api_streams, hooked_server, hooks  # noqa: F401 (fixture)


def test_closing_hooks_name_the_stream_id_of_their_opening_twins(server_factory, media_file,
                                                                  publisher_factory, hooks):
    srv = hooked_server(server_factory, hooks)
    alone = publisher_factory(srv.url("live/alone?token=good"), media_file)
    assert wait_for(lambda: any(s["video"] for s in api_streams(srv.api)), 15)
    alone_id = api_streams(srv.api)[0]["id"]
    alone.stop()                                # no player: the source goes with it
    assert wait_for(lambda: hooks.bodies("on_unpublish"), 10)
    assert hooks.bodies("on_unpublish")[0].get("stream_id") == alone_id
    hooks.calls.clear()
    assert wait_for(lambda: api_streams(srv.api) == [], 10)

    pub = publisher_factory(srv.url("live/s?token=good"), media_file)
    assert wait_for(lambda: any(s["video"] for s in api_streams(srv.api)), 15)
    sid = api_streams(srv.api)[0]["id"]
    viewer = RtmpTestClient(f"rtmp://127.0.0.1:{srv.port}/live/s?token=good")
    assert viewer.play()
    assert viewer.pump_until(lambda: len(viewer.media) > 10, 10)
    pub.stop()                                  # the source goes while the player still plays
    assert wait_for(lambda: hooks.bodies("on_unpublish"), 10)
    viewer.close()
    assert wait_for(lambda: hooks.bodies("on_stop"), 10)
    ids = {action: hooks.bodies(action)[0].get("stream_id")
           for action in ("on_publish", "on_unpublish", "on_play", "on_stop")}
    assert ids == dict.fromkeys(ids, sid)
