"""What a client may name: length caps, no control or invisible characters (sans-IO).

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
- Nor may a name hold a character that changes how the text around it is shown or shows
  nothing (display spoofing in logs, the API, file names, players): Unicode format characters
  (category Cf: bidi overrides/embeddings/isolates such as U+202E, LRM/RLM, zero-width
  characters, the BOM, tags), line and paragraph separators (Zl, Zp), spaces other than U+0020
  (Zs; SRS strips whitespace from names anyway), surrogates, and the other invisible
  Default_Ignorable code points (U+034F, Hangul fillers, variation selectors...). So an emoji
  sequence joined by U+200D or styled by U+FE0F is refused too; visible letters of any script
  pass. The test is the running Python's Unicode database (`unicodedata`).
- At play/publish the stream may not be empty (SRS: ERROR_RTMP_STREAM_NAME_EMPTY). What the
  segments of app and stream may be (no ".", "..", empty) is `discover`'s rule (lib/names.py).
- The error text never holds the name itself (it may be huge, hold a token or a control
  character): only what was wrong, its length and where. Other errors that quote a peer's
  values (a command name, say) are cut to LOG_CHARS by `clip`, with every character a name may
  not hold escaped, before they are logged.
"""
import re
import unicodedata

from lib.rtmp.url import UrlError

MAX_URL = 4096
MAX_NAME = 1024
MAX_PARAM = 4096
LOG_CHARS = 300      # of one error text quoting a peer's values, in one log line

_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})   # U+0020 excepted
# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties) outside those categories:
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian variation
# selectors, variation selectors, reserved U+FFF0.., tags and their variation selectors
_IGNORABLE = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f"
                        "\uffa0\ufff0-\ufff8\U000e0000-\U000e0fff]")


class LimitError(UrlError):
    """A client's name too long, empty where a stream is needed, or holding a control or
    invisible character."""


def check_text(what, text, cap):
    """Refuse `text` (what the client sent as `what`) longer than `cap` or with a character no
    name may hold (see the header)."""
    if not isinstance(text, str):
        return                      # discover() refuses non-strings with its own message
    if len(text) > cap:
        raise LimitError(f"{what} of {len(text)} characters exceeds {cap}")
    offset = _first_refused(text)
    if offset is not None:
        char = text[offset]
        if unicodedata.category(char) == "Cc":
            raise LimitError(f"{what} holds control character {ord(char):#04x} at offset {offset}")
        raise LimitError(f"{what} holds invisible character U+{ord(char):04X} at offset {offset}")


def _refused(char):
    """True for a character no name may hold (see the header)."""
    return char != " " and (unicodedata.category(char) in _REFUSED_CATEGORIES
                            or _IGNORABLE.match(char) is not None)


def _first_refused(text):
    """The offset of the first character of `text` no name may hold, or None."""
    if text.isascii():                       # the usual name: one regex search
        bad = _ASCII_CONTROL.search(text)
        return None if bad is None else bad.start()
    return next((i for i, char in enumerate(text) if _refused(char)), None)


def _escaped(char):
    code = ord(char)
    if not _refused(char):
        return char
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clip(text):
    """`text` cut to LOG_CHARS characters (with the length it had), every character a name may
    not hold escaped (\\x0a, \\u202e)."""
    shown = "".join(map(_escaped, text[:LOG_CHARS]))
    if len(text) <= LOG_CHARS and len(shown) <= LOG_CHARS:
        return shown
    return f"{shown[:LOG_CHARS]}... ({len(text)} characters)"


def check_request(req, stream_needed=False):
    """The parsed names of a Request (app, stream, param); with `stream_needed` (play,
    publish) the stream may not be empty (as SRS: HLS would write a file with an empty name)."""
    if stream_needed and not req.stream:
        raise LimitError("empty stream")
    check_text("app", req.app, MAX_NAME)
    check_text("stream", req.stream, MAX_NAME)
    check_text("param", req.param, MAX_PARAM)
