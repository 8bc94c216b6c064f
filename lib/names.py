"""The one home of the names every layer shares: version, server name, default vhost, stream key.

Rule: nothing else defines these; the sans-IO layers and the server import them from here.

Stream identity (SRS's srs_generate_stream_url + srs_path_filename): a stream name's extension,
whatever it is (everything from the LAST "." of its last "/" segment), is not part of the stream's identity. So
`live/s.flv` (what an SRS edge pulls for an HTTP-FLV player), `live/s.m3u8` and `live/s` are one
source. `stream_key` is used wherever a source is looked up or made (RTMP play/publish,
HTTP-FLV/TS, API, hooks' stream_url), so the rule lives here only.

Path segments (issue 20): app and stream names become paths (HLS, DVR, exec, transcode), so a
name's "/"-separated segments may not be empty, "." or "..": otherwise two names ("live/s",
"./live/s", "live//s") would be one file, or a name would leave its directory. `bad_segment`
says what is wrong; lib/rtmp/url.py `discover` (where every request's names are parsed)
collapses empty segments and refuses the others, for the stream also once its extension is
dropped (".flv" is an empty name, "..flv" a "." one).
"""
import random
import string

VERSION = "0.1.0"
SERVER_NAME = f"srsedge/{VERSION}"
DEFAULT_VHOST = "__defaultVhost__"
DEFAULT_APP = "__defaultApp__"
_ID_CHARS = string.ascii_lowercase + string.digits


def new_id(prefix="vid-"):
    """An SRS-style random id ("vid-" + 7 lowercase letters or digits): API ids of streams and
    vhosts, server ids."""
    return prefix + "".join(random.choice(_ID_CHARS) for _ in range(7))


def stream_name(stream):
    """SRS's srs_path_filename: the stream name without its extension ("s.flv" -> "s",
    "a.b.c" -> "a.b"; a name without "." is kept). Only the last segment has an extension
    ("a.b/c" stays): a key then depends only on the path app/stream, so two names that write
    the same files are one source (SRS drops the whole directory part here)."""
    dot = stream.rfind(".")
    return stream[:dot] if dot > stream.rfind("/") else stream


def bad_segment(name):
    """The first empty, "." or ".." segment of the "/"-separated `name` (as a phrase for an
    error message: "an empty segment", "a '..' segment"), or None when every segment is a
    plain name."""
    for seg in name.split("/"):
        if seg in ("", ".", ".."):
            return f"a {seg!r} segment" if seg else "an empty segment"
    return None


def stream_key(vhost, app, stream):
    """The key of a live source: `vhost/app/stream` (vhost = the matched config vhost name,
    stream without its extension, see the header)."""
    return f"{vhost}/{app}/{stream_name(stream)}"


def stream_url(vhost, app, stream):
    """SRS's stream_url (hooks, API `url`): like stream_key but "" for the default vhost."""
    return stream_key("" if vhost == DEFAULT_VHOST else vhost, app, stream)
