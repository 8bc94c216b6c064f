"""What a client may name: length caps and no control characters (sans-IO).

Rules (this module owns them):
- Checked before anything parses, stores or logs a client's names: at RTMP connect (tcUrl), at
  play/publish (the name as sent, with its query) and for HTTP-FLV (the app/stream of the path
  and the query). After `discover`, app and stream are capped again (a name can move between
  tcUrl and stream, e.g. OBS's "live/livestream").
- Caps: MAX_URL bytes for a tcUrl and for a play/publish name with its query (tokens such as
  JWTs live there), MAX_NAME for app and stream, MAX_PARAM for the query. A name longer than a
  cap, or holding a control character (C0, DEL, C1), is refused with LimitError (a UrlError, so
  a ProtocolError: the connection closes with one log line). SRS has no such caps; these are
  generous for real names and keep one log line short.
- At play/publish the stream may not be empty (SRS: ERROR_RTMP_STREAM_NAME_EMPTY). What the
  segments of app and stream may be (no ".", "..", empty) is `discover`'s rule (lib/names.py).
- The error text never holds the name itself (it may be huge, hold a token or a control
  character): only what was wrong, its length and where. Other errors that quote a peer's
  values (a command name, say) are cut to LOG_CHARS by `clip` before they are logged.
"""
import re

from lib.rtmp.url import UrlError

MAX_URL = 4096
MAX_NAME = 1024
MAX_PARAM = 4096
LOG_CHARS = 300      # of one error text quoting a peer's values, in one log line

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class LimitError(UrlError):
    """A client's name too long or holding a control character."""


def check_text(what, text, cap):
    """Refuse `text` (what the client sent as `what`) longer than `cap` or with a control
    character."""
    if not isinstance(text, str):
        return                      # discover() refuses non-strings with its own message
    if len(text) > cap:
        raise LimitError(f"{what} of {len(text)} characters exceeds {cap}")
    bad = _CONTROL.search(text)
    if bad is not None:
        raise LimitError(f"{what} holds control character {ord(bad.group()):#04x} "
                         f"at offset {bad.start()}")


def clip(text):
    """`text` cut to LOG_CHARS characters (with the length it had), control characters escaped."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(text) <= LOG_CHARS:
        return text
    return f"{text[:LOG_CHARS]}... ({len(text)} characters)"


def check_request(req, stream_needed=False):
    """The parsed names of a Request (app, stream, param); with `stream_needed` (play,
    publish) the stream may not be empty (as SRS: HLS would write a file with an empty name)."""
    if stream_needed and not req.stream:
        raise LimitError("empty stream")
    check_text("app", req.app, MAX_NAME)
    check_text("stream", req.stream, MAX_NAME)
    check_text("param", req.param, MAX_PARAM)
