"""ServerSession and ClientSession talking to each other in memory (sans-IO)."""
import itertools

import pytest

from lib.rtmp import amf0
from lib.rtmp import session as rs
from lib.rtmp.chunk import ChunkReader, encode_message
from lib.rtmp.errors import CommandError, ProtocolError
from lib.rtmp.message import MSG_AMF0_COMMAND, MSG_AUDIO, MSG_VIDEO, encode_command

SEED = itertools.count()


def rand(n):
    return bytes((next(SEED) * 7 + 3) & 0xFF for _ in range(n))


def pump(client, server, server_actions):
    """Move bytes both ways until quiet; apply server decisions for each server event."""
    c_events, s_events = [], []
    for _ in range(50):
        moved = False
        out = client.data_to_send()
        if out:
            moved = True
            for ev in server.feed(out):
                s_events.append(ev)
                action = server_actions.get(type(ev))
                if action:
                    action(server, ev)
        back = server.data_to_send()
        if back:
            moved = True
            c_events.extend(client.feed(back))
        if not moved:
            break
    return c_events, s_events


ACCEPT_ALL = {
    rs.ConnectRequest: lambda s, ev: s.accept_connect(chunk_size=4096),
    rs.PublishRequest: lambda s, ev: s.accept_publish(),
    rs.PlayRequest: lambda s, ev: s.accept_play(),
}


def connected_pair(complex_handshake=True):
    client = rs.ClientSession("rtmp://127.0.0.1:1935/live", "live", rand=rand,
                              complex_handshake=complex_handshake)
    server = rs.ServerSession(rand=rand)
    client._out.append(client.start())
    return client, server


@pytest.mark.parametrize("complex_handshake", [True, False])
def test_publish_flow(complex_handshake):
    client, server = connected_pair(complex_handshake)
    client.publish("livestream?token=abc")
    c_events, s_events = pump(client, server, ACCEPT_ALL)
    assert server.handshake.complex is complex_handshake
    kinds = [type(e) for e in s_events]
    assert kinds == [rs.ConnectRequest, rs.PublishRequest]
    assert s_events[0].tc_url == "rtmp://127.0.0.1:1935/live" and s_events[0].app == "live"
    assert s_events[1].stream == "livestream?token=abc"
    assert client.state == "publishing" and server.state == "publishing"
    assert any(isinstance(e, rs.Status) and e.code == "NetStream.Publish.Start" for e in c_events)
    assert server.fmle  # ffmpeg-style FCPublish was sent
    # media flows, metadata loses @setDataFrame
    client.send_media(18, 0, amf0.encode("onMetaData", {"width": 320.0}))
    client.send_media(9, 40, b"\x17\x01\x00\x00\x00frame")
    client.send_media(8, 0xFFFFFF + 5, b"\xaf\x01aac")
    _, s_events = pump(client, server, {})
    media = [(e.type_id, e.timestamp) for e in s_events]
    assert media == [(18, 0), (9, 40), (8, 0xFFFFFF + 5)]
    assert amf0.decode_all(s_events[0].payload)[0] == "onMetaData"
    client.close_stream()
    _, s_events = pump(client, server, {})
    assert any(isinstance(e, rs.Unpublish) for e in s_events)


def test_play_flow_and_media_to_client():
    client, server = connected_pair()
    client.play("livestream")
    c_events, s_events = pump(client, server, ACCEPT_ALL)
    assert [type(e) for e in s_events] == [rs.ConnectRequest, rs.PlayRequest]
    codes = [e.code for e in c_events if isinstance(e, rs.Status)]
    assert codes == ["NetStream.Play.Reset", "NetStream.Play.Start"]
    assert client.state == "playing"
    # the fan-out layer writes shared bytes with the out chunk size; the client decodes them
    shared = encode_message(6, MSG_VIDEO, 1, 1000, b"\x17\x01" + b"x" * 9000, server.out_chunk_size)
    events = client.feed(shared)
    assert [(e.type_id, e.timestamp, len(e.payload)) for e in events] == [(9, 1000, 9002)]


def test_connect_reject():
    client, server = connected_pair()
    client.play("s")
    c_events, _ = pump(client, server, {rs.ConnectRequest: lambda s, ev: s.reject_connect("no")})
    assert server.state == "closed" and client.state == "closed"
    assert c_events[-1].code == "NetConnection.Connect.Rejected"


def test_play_reject_stream_not_found():
    client, server = connected_pair()
    client.play("s")
    actions = dict(ACCEPT_ALL)
    actions[rs.PlayRequest] = lambda s, ev: s.reject("NetStream.Play.StreamNotFound", "none")
    c_events, _ = pump(client, server, actions)
    assert c_events[-1].code == "NetStream.Play.StreamNotFound" and c_events[-1].level == "error"
    assert client.state == "closed"


def test_window_ack_and_ping():
    client, server = connected_pair()
    client.play("s")
    pump(client, server, ACCEPT_ALL)
    # server announced a 2.5 MB window: the client acks after that many bytes
    assert client.peer_window == 2500000
    big = encode_message(6, MSG_VIDEO, 1, 0, b"\x17\x01" + b"y" * 100000, server.out_chunk_size)
    for _ in range(30):
        client.feed(big)
    acks = ChunkReader(client.out_chunk_size).feed(client.data_to_send())
    assert any(m.type_id == 3 for m in acks)
    # ping request -> ping response
    server._send(2, 4, 0, b"\x00\x06\x00\x00\x00\x2a")
    client.feed(server.data_to_send())
    out = ChunkReader(client.out_chunk_size).feed(client.data_to_send())
    assert [(m.type_id, m.payload) for m in out] == [(4, b"\x00\x07\x00\x00\x00\x2a")]


def test_unknown_calls_get_result_and_bare_unknown_closes():
    client, server = connected_pair()
    pump(client, server, ACCEPT_ALL)
    client._send_command(3, 0, "getStreamLength", 7.0, None, "s")
    client._send_command(3, 0, "_checkbw", 8.0, None)
    client.feed(b"")
    server_out = server.feed(client.data_to_send())
    assert server_out == []
    replies = ChunkReader(4096).feed(server.data_to_send())
    from lib.rtmp.message import parse_command
    tids = [parse_command(m.type_id, m.payload).tid for m in replies]
    assert tids == [7.0, 8.0]
    bare = encode_message(3, MSG_AMF0_COMMAND, 0, 0, amf0.encode("whatIsThis"), 128)
    with pytest.raises(CommandError):
        server.feed(bare)


def test_command_before_connect_is_error():
    client, server = connected_pair()
    server.feed(client.data_to_send())
    c2 = b"\x00" * 1536
    with pytest.raises(ProtocolError):
        server.feed(c2 + encode_message(3, MSG_AMF0_COMMAND, 0, 0,
                                        encode_command("createStream", 2, None), 128))


def test_every_split_point_of_a_publish_session():
    """A whole client session fed to the server split at every byte gives the same events."""
    client, server = connected_pair()
    client.publish("s")
    pump(client, server, ACCEPT_ALL)
    client.send_media(9, 0, b"\x17\x00" + b"a" * 300)
    client.send_media(8, 23, b"\xaf\x00\x12\x10")
    tail = client.data_to_send()
    for cut in range(0, len(tail) + 1, 7):
        s2 = rs.ServerSession(rand=rand)
        s2.handshake = server.handshake
        s2.state, s2.reader = "publishing", ChunkReader(server.reader.chunk_size)
        evs = s2.feed(tail[:cut]) + s2.feed(tail[cut:])
        assert [(e.type_id, e.timestamp) for e in evs] == [(9, 0), (8, 23)]


def test_answers_out_of_order_are_refused_and_say_so():
    """Behaviour, not the table read back: the server's caller can only answer what was asked,
    and a peer cannot skip steps."""
    server = rs.ServerSession()
    for answer in (server.accept_play, server.accept_publish, server.accept_connect):
        with pytest.raises(CommandError, match="not allowed"):
            answer()
    client, server = connected_pair()
    client.play("s")
    pump(client, server, {rs.ConnectRequest: lambda s, ev: s.accept_connect()})
    assert server.state == "play_pending"
    with pytest.raises(CommandError):
        server.accept_publish()                      # a play was asked, not a publish
    server.accept_play()
    assert server.state == "playing"
    server.reject("NetStream.Play.Failed", "bye")
    assert server.state == "closed"
    with pytest.raises(CommandError):
        server.accept_play()                         # nothing is open once closed


def test_client_cannot_publish_before_connected():
    client = rs.ClientSession("rtmp://h/a", "a")
    with pytest.raises(CommandError):
        client._transition("publish")
    assert client.state == "handshake"


def test_pipelined_commands_after_connect_are_held_until_the_decision():
    client, server = connected_pair()
    server.feed(client.data_to_send())               # C0C1
    client.feed(server.data_to_send())               # S0S1S2 -> C2 + connect queued
    client._send_command(3, 0, "createStream", 2.0, None)
    client._send_command(5, 1, "play", 0.0, None, "s")
    events = server.feed(client.data_to_send())
    assert [type(e) for e in events] == [rs.ConnectRequest] and server.held
    server.accept_connect()
    events = server.feed(b"")
    assert [type(e) for e in events] == [rs.PlayRequest] and not server.held
