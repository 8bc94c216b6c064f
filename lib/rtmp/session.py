"""RTMP connection state machines, server and client role (sans-IO).

Rules:
- Bytes go in with `feed(data) -> list[event]`; bytes to send are taken with `data_to_send()`.
  No sockets, no clock: randomness and time are passed in.
- This module owns the connection state machines. Each role's transitions are an explicit table
  `(state, trigger) -> next state`; a trigger not in the table for the current state is a
  CommandError (the server closes that connection) unless it is listed as ignorable.
- Protocol control (chunk size, window ack, acknowledgements, ping) is handled here and never
  reaches the caller. Media reaches the caller only in the publishing (server) or playing
  (client) state.
- Media messages sent by the server to players are *not* written here: the fan-out layer encodes
  each message once and shares the bytes. Stream id 1 is the only stream we create.
"""
import os

from . import amf0
from .chunk import ChunkReader, encode_message
from .errors import CommandError, ProtocolError
from lib.names import SERVER_NAME, VERSION
from .handshake import ClientHandshake, ServerHandshake
from .message import (
    CSID_COMMAND, CSID_CONTROL, CSID_STREAM_COMMAND, LIMIT_DYNAMIC, MSG_ABORT, MSG_ACK,
    MSG_AGGREGATE, MSG_AMF0_COMMAND, MSG_AMF0_DATA, MSG_AMF3_COMMAND, MSG_AMF3_DATA, MSG_AUDIO,
    MSG_SET_CHUNK_SIZE, MSG_SET_PEER_BANDWIDTH, MSG_USER_CONTROL, MSG_VIDEO, MSG_WINDOW_ACK_SIZE,
    UC_PING_REQUEST, UC_PING_RESPONSE, UC_STREAM_BEGIN, UC_STREAM_EOF, encode_command, parse_command,
    parse_u32, parse_user_control, set_chunk_size, set_peer_bandwidth, split_aggregate, user_control,
    window_ack_size, ack,
)

STREAM_ID = 1
FMS_VERSION = "FMS/3,5,3,888"
MEDIA_TYPES = (MSG_AUDIO, MSG_VIDEO)
DATA_TYPES = (MSG_AMF0_DATA, MSG_AMF3_DATA)
COMMAND_TYPES = (MSG_AMF0_COMMAND, MSG_AMF3_COMMAND)


# ---------------------------------------------------------------- events

class Event:
    __slots__ = ()

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__ if k != "payload")
        return f"{type(self).__name__}({fields})"


class ConnectRequest(Event):
    __slots__ = ("tc_url", "app", "command_object", "args")

    def __init__(self, tc_url, app, command_object, args):
        self.tc_url, self.app, self.command_object, self.args = tc_url, app, command_object, args


class PublishRequest(Event):
    __slots__ = ("stream", "publish_type")

    def __init__(self, stream, publish_type):
        self.stream, self.publish_type = stream, publish_type


class PlayRequest(Event):
    __slots__ = ("stream", "start", "duration", "reset")

    def __init__(self, stream, start, duration, reset):
        self.stream, self.start, self.duration, self.reset = stream, start, duration, reset


class Media(Event):
    """Audio (8), video (9) or metadata (18, payload is AMF0 `onMetaData` + object)."""
    __slots__ = ("type_id", "timestamp", "payload")

    def __init__(self, type_id, timestamp, payload):
        self.type_id, self.timestamp, self.payload = type_id, timestamp, payload


class Pause(Event):
    __slots__ = ("paused", "position")

    def __init__(self, paused, position):
        self.paused, self.position = paused, position


class Unpublish(Event):
    __slots__ = ()


class StopPlay(Event):
    __slots__ = ()


class Connected(Event):
    """Client role: the server accepted connect. `info` is the _result information object."""
    __slots__ = ("properties", "info")

    def __init__(self, properties, info):
        self.properties, self.info = properties, info


class Status(Event):
    """Client role: onStatus (or an _error) from the server."""
    __slots__ = ("level", "code", "description", "info")

    def __init__(self, level, code, description, info):
        self.level, self.code, self.description, self.info = level, code, description, info


class StreamEnd(Event):
    """Client role: the server signalled StreamEOF on our stream."""
    __slots__ = ()


DECISIONS = (ConnectRequest, PublishRequest, PlayRequest)


# ---------------------------------------------------------------- shared plumbing

class _Base:
    def __init__(self, out_chunk_size):
        self.reader = ChunkReader()
        self.out_chunk_size = 128
        self._pending_out_chunk_size = out_chunk_size
        self._out = []
        self.peer_window = 0          # peer's Window Acknowledgement Size
        self._acked = 0
        self.state = None

    # -- output
    def has_output(self):
        """Bytes are queued for the peer (a reply, an acknowledgement)."""
        return bool(self._out)

    def data_to_send(self):
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _send(self, csid, type_id, stream_id, payload, timestamp=0):
        self._out.append(encode_message(csid, type_id, stream_id, timestamp, payload,
                                        self.out_chunk_size))

    def _send_command(self, csid, stream_id, name, tid, obj, *args):
        self._send(csid, MSG_AMF0_COMMAND, stream_id, encode_command(name, tid, obj, *args))

    def _send_data(self, stream_id, *values):
        self._send(CSID_STREAM_COMMAND, MSG_AMF0_DATA, stream_id, amf0.encode(*values))

    def _set_out_chunk_size(self):
        size = self._pending_out_chunk_size
        self._send(CSID_CONTROL, MSG_SET_CHUNK_SIZE, 0, set_chunk_size(size))
        self.out_chunk_size = size

    def _transition(self, trigger):
        nxt = self.TRANSITIONS.get((self.state, trigger))
        if nxt is None:
            raise CommandError(f"{trigger} not allowed in state {self.state}")
        self.state = nxt

    # -- input
    def read_messages(self, data):
        """The chunk layer alone (after the handshake): the messages in `data`, with any
        acknowledgement due queued to send. Hot paths (a publishing connection, an edge's pull
        link) hand plain audio and video straight on and give the rest to `handle`, in order."""
        return self._read_messages(data)

    def _read_messages(self, data):
        messages = self.reader.feed(data)
        self.count_received()
        return messages

    def count_received(self):
        """Queue the acknowledgement due for what `reader` parsed so far (callers that feed the
        reader themselves, such as the server's C socket pump, call this after each feed)."""
        received = self.reader.bytes_received
        if self.peer_window and received - self._acked >= self.peer_window:
            self._acked = received
            self._send(CSID_CONTROL, MSG_ACK, 0, ack(received))

    def bytes_before_ack(self, cap):
        """How many more bytes may be read before the next acknowledgement is due (at most
        `cap`; `cap` when the peer asked for none)."""
        if not self.peer_window:
            return cap
        return max(0, min(cap, self.peer_window - (self.reader.bytes_received - self._acked)))

    def _on_control(self, msg):
        """Protocol control messages. Returns True when handled."""
        t = msg.type_id
        if t == MSG_SET_CHUNK_SIZE or t == MSG_ABORT or t == MSG_ACK or t == MSG_SET_PEER_BANDWIDTH:
            return True  # the reader applied chunk size/abort; acks and bandwidth are advisory
        if t == MSG_WINDOW_ACK_SIZE:
            self.peer_window = parse_u32(msg.payload)
            return True
        if t == MSG_USER_CONTROL:
            event, values = parse_user_control(msg.payload)
            if event == UC_PING_REQUEST and values:
                self._send(CSID_CONTROL, MSG_USER_CONTROL, 0, user_control(UC_PING_RESPONSE, values[0]))
            self._on_user_control(event, values)
            return True
        return False

    def _on_user_control(self, event, values):
        pass

    @staticmethod
    def _media_events(msg):
        if msg.type_id == MSG_AGGREGATE:
            events = []
            for t, ts, p in split_aggregate(msg.timestamp, msg.payload):
                if t in MEDIA_TYPES:
                    if p:                 # empty media is dropped, as by the chunk reader
                        events.append(Media(t, ts, p))
                elif t in DATA_TYPES:
                    data = data_payload(t, p)
                    if data is not None:
                        events.append(Media(MSG_AMF0_DATA, ts, data))
            return events
        return [Media(msg.type_id, msg.timestamp, msg.payload)]


_SET_DATA_FRAME = amf0.encode("@setDataFrame")
ON_METADATA = amf0.encode("onMetaData")
_SAMPLE_ACCESS = amf0.encode("|RtmpSampleAccess")


def data_payload(type_id, payload):
    """A data message as players get it: AMF0, without a leading `@setDataFrame`; onMetaData
    normalized to `onMetaData, obj` (metadata_payload). Other data (onCuePoint, onTextData,
    onFI...) passes unchanged and undecoded: players get it in order; it never becomes metadata."""
    body = payload[1:] if type_id == MSG_AMF3_DATA else payload
    if body.startswith(_SET_DATA_FRAME):
        body = body[len(_SET_DATA_FRAME):]
    if body.startswith(ON_METADATA):
        return metadata_payload(MSG_AMF0_DATA, body)
    return bytes(body) if body else None


def metadata_payload(type_id, payload):
    """Normalize a data message to `onMetaData` + object in AMF0, or None if it is not metadata.

    Accepts `@setDataFrame, onMetaData, obj` (publishers) and `onMetaData, obj`. As SRS's
    SrsMetaCache::update_data (srs_app_source.cpp): an ECMA array becomes an object, `duration`
    is removed (a live stream has none: players would show a seek bar, rtmpdump would stop at
    it), and `server` / `server_version` name this server.
    """
    body = payload[1:] if type_id == MSG_AMF3_DATA else payload
    values = amf0.decode_all(body)
    if values and values[0] == "@setDataFrame":
        values = values[1:]
    if len(values) >= 2 and values[0] == "onMetaData":
        meta = values[1]
        if isinstance(meta, dict):
            meta = {key: value for key, value in meta.items() if key != "duration"}
            meta.update(server=SERVER_NAME, server_version=VERSION)
        return amf0.encode("onMetaData", meta)
    return None


def _info(level, code, description, **extra):
    info = {"level": level, "code": code, "description": description}
    info.update(extra)
    return info


# ---------------------------------------------------------------- server role

class ServerSession(_Base):
    """One RTMP client connected to us.

    States: handshake -> wait_connect -> connecting (caller decides) -> connected ->
    publish_pending/play_pending (caller decides) -> publishing/playing; closed after a reject.
    """
    TRANSITIONS = {
        ("handshake", "handshake_done"): "wait_connect",
        ("wait_connect", "connect"): "connecting",
        ("connecting", "accept_connect"): "connected",
        ("connecting", "reject_connect"): "closed",
        ("connected", "publish"): "publish_pending",
        ("connected", "play"): "play_pending",
        ("publish_pending", "accept_publish"): "publishing",
        ("publish_pending", "reject"): "closed",
        ("play_pending", "accept_play"): "playing",
        ("play_pending", "reject"): "closed",
        ("publishing", "unpublish"): "connected",
        ("playing", "stop_play"): "connected",
        ("publishing", "reject"): "closed",
        ("playing", "reject"): "closed",
    }
    # stream-setup commands answered in place, allowed once connected
    SETUP_STATES = ("connected", "publish_pending", "play_pending", "publishing", "playing")

    def __init__(self, rand=os.urandom, now_ms=0, out_chunk_size=60000,
                 window_ack_size=2500000, peer_bandwidth=2500000):
        super().__init__(out_chunk_size)
        self.handshake = ServerHandshake(rand=rand, now_ms=now_ms)
        self.state = "handshake"
        self.window_ack_size = window_ack_size
        self.peer_bandwidth = peer_bandwidth
        self.connect_tid = 1.0
        self.object_encoding = 0.0
        self.fmle = False             # FCPublish seen: answer onFCPublish/onFCUnpublish
        self.stream_name = None
        self.publish_tid = 0.0
        self.held = []                # messages after a decision event, for the next feed

    def feed(self, data):
        if self.state == "handshake":
            self._out.append(self.handshake.feed(data))
            if not self.handshake.done:
                return []
            self._transition("handshake_done")
            data = self.handshake.leftover
            if not data:
                return []
        if self.state == "closed":
            return []
        return self.handle(self._read_messages(data) if data else [])

    def handle(self, messages):
        """Events for parsed messages (and for the messages held after a decision)."""
        events = []
        if self.held:
            messages, self.held = self.held + messages, []
        for i, msg in enumerate(messages):
            t = msg.type_id
            if t in MEDIA_TYPES or t == MSG_AGGREGATE:
                if self.state == "publishing":
                    events.extend(self._media_events(msg))
            elif t in DATA_TYPES:
                if self.state == "publishing":
                    data = data_payload(t, msg.payload)
                    if data is not None:
                        events.append(Media(MSG_AMF0_DATA, msg.timestamp, data))
            elif t in COMMAND_TYPES:
                event = self._on_command(parse_command(t, msg.payload))
                if event is not None:
                    events.append(event)
                    if isinstance(event, DECISIONS):
                        # the caller must answer before later messages make sense (a client may
                        # pipeline createStream after connect): keep them for the next feed
                        self.held = messages[i + 1:]
                        break
            else:
                self._on_control(msg)
        return events

    # -- commands from the client
    def _on_command(self, cmd):
        name = cmd.name
        if name == "connect":
            self._transition("connect")
            obj = cmd.obj if isinstance(cmd.obj, dict) else {}
            tc_url = obj.get("tcUrl")
            app = obj.get("app")
            if not isinstance(tc_url, str) or not tc_url:
                raise CommandError("connect without tcUrl")
            self.connect_tid = cmd.tid if cmd.tid is not None else 1.0
            enc = obj.get("objectEncoding")
            self.object_encoding = enc if isinstance(enc, float) else 0.0
            return ConnectRequest(tc_url, app if isinstance(app, str) else "", obj, cmd.args)
        if self.state in ("handshake", "wait_connect", "connecting"):
            raise CommandError(f"command {name!r} before connect")
        if name == "createStream":
            self._result(cmd.tid, None, float(STREAM_ID))
        elif name == "releaseStream":
            self._result(cmd.tid, None, amf0.UNDEFINED)
        elif name == "FCPublish":
            self.fmle = True
            self._result(cmd.tid, None, amf0.UNDEFINED)
        elif name == "publish":
            stream = cmd.args[0] if cmd.args else None
            if not isinstance(stream, str) or not stream:
                raise CommandError("publish without a stream name")
            self._transition("publish")
            self.stream_name = stream
            self.publish_tid = cmd.tid
            ptype = cmd.args[1] if len(cmd.args) > 1 and isinstance(cmd.args[1], str) else "live"
            return PublishRequest(stream, ptype)
        elif name == "play":
            stream = cmd.args[0] if cmd.args else None
            if not isinstance(stream, str) or not stream:
                raise CommandError("play without a stream name")
            self._transition("play")
            self.stream_name = stream
            start = cmd.args[1] if len(cmd.args) > 1 and isinstance(cmd.args[1], float) else -2.0
            duration = cmd.args[2] if len(cmd.args) > 2 and isinstance(cmd.args[2], float) else -1.0
            reset = cmd.args[3] if len(cmd.args) > 3 and isinstance(cmd.args[3], bool) else True
            return PlayRequest(stream, start, duration, reset)
        elif name == "pause":
            paused = bool(cmd.args[0]) if cmd.args else False
            pos = cmd.args[1] if len(cmd.args) > 1 and isinstance(cmd.args[1], float) else 0.0
            if self.state == "playing":
                code = "NetStream.Pause.Notify" if paused else "NetStream.Unpause.Notify"
                desc = "Paused stream." if paused else "Unpaused stream."
                self._on_status(code, desc)
                return Pause(paused, pos)
        elif name == "FCUnpublish":
            self._result(cmd.tid, None, amf0.UNDEFINED)
            if self.state == "publishing":
                return self._unpublish()
        elif name in ("closeStream", "deleteStream"):
            if self.state == "publishing":
                return self._unpublish()
            if self.state == "playing":
                self._transition("stop_play")
                return StopPlay()
        elif name == "getStreamLength" and cmd.tid is not None:
            # ffmpeg (rtmpproto.c read_number_result) wants "_result", tid, null, number, else
            # it warns "Unexpected reply on getStreamLength()"; a live stream's length is 0.
            # (SRS 7 does not answer it at all: identify_create_stream_client ignores the call.)
            self._result(cmd.tid, None, 0.0)
        elif name in ("_result", "_error", "onBWDone", "onStatus", "@setDataFrame"):
            pass  # replies to our calls, or chatter we do not need
        elif cmd.tid is None:
            raise CommandError(f"unknown command {name!r} without transaction id")
        elif cmd.tid > 0:
            # getStreamLength, _checkbw and any other call: answer so the client does not wait
            self._result(cmd.tid, None, amf0.UNDEFINED if cmd.obj is None else cmd.obj)
        return None

    def _unpublish(self):
        self._transition("unpublish")
        if self.fmle:
            self._send_command(CSID_STREAM_COMMAND, STREAM_ID, "onFCUnpublish", 0.0, None,
                               _info("status", "NetStream.Unpublish.Success", "Stop publishing stream."))
        self._on_status("NetStream.Unpublish.Success", "Stream is now unpublished")
        return Unpublish()

    def _result(self, tid, obj, *args):
        self._send_command(CSID_COMMAND, 0, "_result", tid, obj, *args)

    def _on_status(self, code, description, level="status"):
        self._send_command(CSID_STREAM_COMMAND, STREAM_ID, "onStatus", 0.0, None,
                           _info(level, code, description, clientid="ASAICiss"))

    # -- decisions from the caller
    def accept_connect(self, server_info=None, chunk_size=None):
        self._transition("accept_connect")
        if chunk_size:
            self._pending_out_chunk_size = chunk_size
        self._send(CSID_CONTROL, MSG_WINDOW_ACK_SIZE, 0, window_ack_size(self.window_ack_size))
        self._send(CSID_CONTROL, MSG_SET_PEER_BANDWIDTH, 0,
                   set_peer_bandwidth(self.peer_bandwidth, LIMIT_DYNAMIC))
        self._set_out_chunk_size()
        props = {"fmsVer": FMS_VERSION, "capabilities": 127.0, "mode": 1.0}
        data = amf0.EcmaArray({"version": "3,5,3,888", "srs_server": SERVER_NAME})
        if server_info:
            data.update(server_info)
        info = _info("status", "NetConnection.Connect.Success", "Connection succeeded",
                     objectEncoding=self.object_encoding, data=data)
        self._send_command(CSID_COMMAND, 0, "_result", self.connect_tid, props, info)
        self._send_command(CSID_COMMAND, 0, "onBWDone", 0.0, None)

    def reject_connect(self, description="Connection rejected"):
        self._transition("reject_connect")
        self._send_command(CSID_COMMAND, 0, "_error", self.connect_tid, None,
                           _info("error", "NetConnection.Connect.Rejected", description))

    def accept_publish(self):
        self._transition("accept_publish")
        if self.fmle:
            self._send_command(CSID_STREAM_COMMAND, STREAM_ID, "onFCPublish", 0.0, None,
                               {"code": "NetStream.Publish.Start",
                                "description": "Started publishing stream."})
        self._on_status("NetStream.Publish.Start", "Started publishing stream.")

    def accept_play(self):
        self._transition("accept_play")
        self._send(CSID_CONTROL, MSG_USER_CONTROL, 0, user_control(UC_STREAM_BEGIN, STREAM_ID))
        self._on_status("NetStream.Play.Reset", "Playing and resetting stream.")
        self._on_status("NetStream.Play.Start", "Started playing stream.")
        self._send_data(STREAM_ID, "|RtmpSampleAccess", False, False)
        # SRS also sends an `onStatus` data message (NetStream.Data.Start); ffmpeg turns it into
        # an extra "data" stream, so we leave it out (nginx-rtmp does not send it either).

    def reject(self, code, description):
        """Refuse a pending publish/play (or end an active one) with an error onStatus."""
        self._transition("reject")
        self._on_status(code, description, level="error")


# ---------------------------------------------------------------- client role

class ClientSession(_Base):
    """We are the RTMP client (edge ingester/forwarder, tests, benchmarks).

    Usage: `start()` gives C0C1; after the handshake `connect` goes out by itself; then call
    `play(stream)` or `publish(stream)` (queued until connected). Events: Connected, Status,
    Media (playing), StreamEnd.
    States: handshake -> connecting -> connected -> creating -> play_pending/publish_pending ->
    playing/publishing; closed after a refusal.
    """
    TRANSITIONS = {
        ("handshake", "handshake_done"): "connecting",
        ("connecting", "connect_ok"): "connected",
        ("connecting", "connect_error"): "closed",
        ("connected", "create_stream"): "creating",
        ("creating", "stream_created"): "stream_ready",
        ("creating", "create_error"): "closed",
        ("stream_ready", "play"): "play_pending",
        ("stream_ready", "publish"): "publish_pending",
        ("play_pending", "play_start"): "playing",
        ("publish_pending", "publish_start"): "publishing",
        ("play_pending", "refused"): "closed",
        ("publish_pending", "refused"): "closed",
        ("playing", "refused"): "closed",
        ("publishing", "refused"): "closed",
        ("playing", "stop"): "closed",
        ("publishing", "stop"): "closed",
    }

    def __init__(self, tc_url, app, rand=os.urandom, now_ms=0, complex_handshake=True,
                 out_chunk_size=60000, connect_extra=None, connect_args=(), flash_ver=None):
        super().__init__(out_chunk_size)
        self.handshake = ClientHandshake(complex=complex_handshake, rand=rand, now_ms=now_ms)
        self.state = "handshake"
        self.tc_url = tc_url
        self.app = app
        self.connect_extra = connect_extra or {}
        self.connect_args = list(connect_args)
        self.flash_ver = flash_ver or "LNX 9,0,124,2"
        self._tid = 1.0
        self._calls = {}              # tid -> name of our pending calls
        self._intent = None           # ("play"|"publish", stream)
        self.stream_id = STREAM_ID

    def start(self):
        return self.handshake.start()

    def _next_tid(self, name):
        self._tid += 1.0
        self._calls[self._tid] = name
        return self._tid

    def play(self, stream):
        self._intent = ("play", stream)
        if self.state == "connected":
            self._create_stream()

    def publish(self, stream):
        self._intent = ("publish", stream)
        if self.state == "connected":
            self._create_stream()

    def _create_stream(self):
        kind, stream = self._intent
        if kind == "publish":
            self._send_command(CSID_COMMAND, 0, "releaseStream", self._next_tid("releaseStream"),
                               None, stream)
            self._send_command(CSID_COMMAND, 0, "FCPublish", self._next_tid("FCPublish"), None, stream)
        self._transition("create_stream")
        self._send_command(CSID_COMMAND, 0, "createStream", self._next_tid("createStream"), None)

    def send_media(self, type_id, timestamp, payload):
        """Publishing: one media/metadata message to the server (not shared bytes)."""
        csid = 6 if type_id == MSG_VIDEO else 4 if type_id == MSG_AUDIO else CSID_STREAM_COMMAND
        if type_id == MSG_AMF0_DATA and payload.startswith(ON_METADATA):
            payload = _SET_DATA_FRAME + payload      # as ffmpeg: only metadata is "set"
        self._send(csid, type_id, self.stream_id, payload, timestamp)

    def close_stream(self):
        if self.state == "publishing":
            stream = self._intent[1]
            self._send_command(CSID_COMMAND, 0, "FCUnpublish", self._next_tid("FCUnpublish"), None, stream)
        if self.state in ("publishing", "playing"):
            self._send_command(CSID_STREAM_COMMAND, self.stream_id, "deleteStream", 0.0, None,
                               float(self.stream_id))
            self._transition("stop")

    def feed(self, data):
        events = []
        if self.state == "handshake":
            self._out.append(self.handshake.feed(data))
            if not self.handshake.done:
                return events
            self._transition("handshake_done")
            self._send_connect()
            data = self.handshake.leftover
            if not data:
                return events
        return self.handle(self._read_messages(data), events)

    def handle(self, messages, events=None):
        """Events for parsed messages (`read_messages`)."""
        if events is None:
            events = []
        for msg in messages:
            t = msg.type_id
            if t in MEDIA_TYPES or t == MSG_AGGREGATE:
                if self.state == "playing":
                    events.extend(self._media_events(msg))
            elif t in DATA_TYPES:
                self._on_data(msg, events)
            elif t in COMMAND_TYPES:
                self._on_command(parse_command(t, msg.payload), events)
            else:
                self._on_control(msg)
                if t == MSG_USER_CONTROL and self._eof:
                    self._eof = False
                    events.append(StreamEnd())
        return events

    _eof = False

    def _on_user_control(self, event, values):
        if event == UC_STREAM_EOF:
            self._eof = True

    def _send_connect(self):
        obj = {"app": self.app, "flashVer": self.flash_ver, "tcUrl": self.tc_url,
               "fpad": False, "capabilities": 239.0, "audioCodecs": 3575.0,
               "videoCodecs": 252.0, "videoFunction": 1.0, "objectEncoding": 0.0}
        obj.update(self.connect_extra)
        self._calls[1.0] = "connect"
        self._send(CSID_CONTROL, MSG_WINDOW_ACK_SIZE, 0, window_ack_size(2500000))
        self._set_out_chunk_size()
        self._send_command(CSID_COMMAND, 0, "connect", 1.0, obj, *self.connect_args)

    def _on_data(self, msg, events):
        if self.state != "playing":
            return
        data = data_payload(msg.type_id, msg.payload)
        if data is not None and not data.startswith(_SAMPLE_ACCESS):   # the server's, not media
            events.append(Media(MSG_AMF0_DATA, msg.timestamp, data))

    def _on_command(self, cmd, events):
        name = cmd.name
        if name in ("_result", "_error"):
            call = self._calls.pop(cmd.tid, None)
            info = cmd.args[0] if cmd.args else None
            if call == "connect":
                if name == "_result":
                    self._transition("connect_ok")
                    events.append(Connected(cmd.obj, info))
                    if self._intent:
                        self._create_stream()
                else:
                    self._transition("connect_error")
                    events.append(_status_event(info, "NetConnection.Connect.Rejected"))
            elif call == "createStream":
                if name == "_result":
                    if isinstance(info, float):
                        if not (info.is_integer() and 0 <= info <= 0xFFFFFFFF):
                            raise CommandError(f"createStream result with a bad stream id {info!r}")
                        self.stream_id = int(info)
                    self._transition("stream_created")
                    self._start_intent()
                else:
                    self._transition("create_error")
                    events.append(_status_event(info, "NetStream.CreateStream.Failed"))
            return
        if name == "onStatus":
            info = cmd.args[0] if cmd.args else None
            ev = _status_event(info, "")
            events.append(ev)
            self._on_status_code(ev)
        elif name in ("onBWDone", "onFCPublish", "onFCUnpublish", "_checkbw"):
            pass
        elif cmd.tid and cmd.tid > 0:
            self._send_command(CSID_COMMAND, 0, "_result", cmd.tid, None, amf0.UNDEFINED)

    def _start_intent(self):
        kind, stream = self._intent
        if kind == "play":
            self._transition("play")
            self._send(CSID_CONTROL, MSG_USER_CONTROL, 0,
                       user_control(3, self.stream_id, 3000))  # SetBufferLength
            self._send_command(CSID_STREAM_COMMAND, self.stream_id, "play", 0.0, None, stream, -2.0)
        else:
            self._transition("publish")
            self._send_command(CSID_STREAM_COMMAND, self.stream_id, "publish", 0.0, None, stream, "live")

    def _on_status_code(self, ev):
        code = ev.code
        if self.state == "play_pending" and code == "NetStream.Play.Start":
            self._transition("play_start")
        elif self.state == "publish_pending" and code == "NetStream.Publish.Start":
            self._transition("publish_start")
        elif ev.level == "error" and self.state in ("play_pending", "publish_pending",
                                                    "playing", "publishing"):
            self._transition("refused")


def _status_event(info, default_code):
    if not isinstance(info, dict):
        return Status("error", default_code, "", {})
    level = info.get("level") if isinstance(info.get("level"), str) else "status"
    code = info.get("code") if isinstance(info.get("code"), str) else default_code
    desc = info.get("description") if isinstance(info.get("description"), str) else ""
    return Status(level, code, desc, info)


__all__ = [
    "ServerSession", "ClientSession", "ConnectRequest", "PublishRequest", "PlayRequest", "Media",
    "Pause", "Unpublish", "StopPlay", "Connected", "Status", "StreamEnd", "metadata_payload", "data_payload",
    "ProtocolError", "STREAM_ID",
]
