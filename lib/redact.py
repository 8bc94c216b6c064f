"""How a secret is hidden: the one redaction every log line, API answer and stored output uses.

Rules (this module owns them; sans-IO, no imports from lib):
- `redact(text)` replaces with `***` the value of every query pair whose key contains token,
  key, secret, sign, auth, passwd or password (case-insensitive: `access_token`, `txSecret`,
  `api_key`), and the password of a URL's user info (`rtmp://user:***@host`). A pair starts the
  text or follows `?`, `&`, `;`, whitespace or a quote (free text: `bad token=***`); its value
  ends at `&`, `;`, `#`, whitespace or a quote, so a line (ffmpeg's stderr:
  `'rtmp://h/live/s?token=***': Input/output error`) keeps the rest of what it says. A token
  that itself holds whitespace or a quote is hidden up to it. Harmless pairs with such a key
  are hidden too (x264's `keyint=***`): hiding too much is the safe side.
- `redact_tree(obj)` is `redact` on every string of a JSON-like tree (dicts, lists, tuples),
  keys kept; it returns a copy and never changes the live objects.
- Where it is applied (one place each): the log sink (lib/server/process/log.py `Logger.write`,
  so every line, whoever writes it), the HTTP API's answer (lib/server/api/routes.py, every
  field), the output lines a supervised process keeps for the API (lib/server/ffmpeg/process.py).
  What is sent on purpose keeps the real value: hook request bodies, the argv a child runs with,
  the URLs an edge connects to.
"""
import re

_SECRET_WORDS = ("token", "key", "secret", "sign", "auth", "passwd", "password")
_QUERY_PAIR = re.compile(r"(^|[?&;\s'\"])([^=&;?#/\s'\"]*)=([^&;#\s'\"]*)")
_USERINFO = re.compile(r"(://[^/@:?#\s'\"]*):[^/@?#\s'\"]*@")


def _pair(m):
    key = m.group(2)
    if any(word in key.lower() for word in _SECRET_WORDS):
        return f"{m.group(1)}{key}=***"
    return m.group(0)


def redact(text):
    """`text` with token-like query values and URL passwords replaced by `***` (see header)."""
    if "=" not in text and "@" not in text:
        return text
    return _QUERY_PAIR.sub(_pair, _USERINFO.sub(r"\1:***@", text))


def redact_tree(obj):
    """A copy of a JSON-like tree with `redact` applied to every string value."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {key: redact_tree(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_tree(value) for value in obj]
    return obj
