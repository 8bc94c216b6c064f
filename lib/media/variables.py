"""SRS's `[name]` variables in paths, URLs and commands (sans-IO: `now` is passed in).

Rules:
- `expand(text, values)` replaces each `[name]` of `values` (a dict without brackets) in ONE
  pass over the template: a value is inserted as it is and never expanded again (an app named
  `live/[param]` stays `live/[param]`); unknown names stay as written.
- `expand_word(template, values)` is `expand` for one word that a program will read (an argv
  word, an output URL), checked on its final text: UnsafeExpansion when the values, not the
  template, made it
    - move a path: a `.` or `..` segment (between `/`) that the template did not have, or an
      absolute path (`/...`) from a word the template did not start with `/`;
    - an option: a word starting with `-` that the template did not start with `-` (a stream
      named `-f` must not become an ffmpeg option).
  What the template itself says (`../objs/[stream].flv`, `-o`) is the operator's and allowed.
- `unsafe(name)` says whether a client-chosen name must not go into a path (DVR refuses to
  record it).
- `time_values(now, utc)` gives SRS's srs_path_build_timestamp names: [2006] year, [01] month,
  [02] day, [15] hour, [04] minute, [05] second, [999] ms, [timestamp] ms since the epoch; local
  time unless `utc` (the `utc_time` directive).
"""
import re
import time

_VARIABLE = re.compile(r"\[([^\[\]]*)\]")
_DOT_SEGMENTS = frozenset({".", ".."})


class UnsafeExpansion(ValueError):
    pass


def unsafe(value):
    """True if a client-chosen name (app, stream, vhost) could move a path it is put into:
    an absolute name, or an empty, `.` or `..` segment."""
    return value.startswith("/") or any(seg in ("", ".", "..") for seg in value.split("/"))


def time_values(now, utc=False):
    t = time.gmtime(now) if utc else time.localtime(now)
    return {"2006": f"{t.tm_year:04d}", "01": f"{t.tm_mon:02d}", "02": f"{t.tm_mday:02d}",
            "15": f"{t.tm_hour:02d}", "04": f"{t.tm_min:02d}", "05": f"{t.tm_sec:02d}",
            "999": f"{int(now * 1000) % 1000:03d}", "timestamp": str(int(now * 1000))}


def expand(text, values):
    """`text` with each known `[name]` replaced by its value, in one pass (see header)."""
    def value_of(m):
        value = values.get(m.group(1))
        return m.group(0) if value is None else str(value)
    return _VARIABLE.sub(value_of, text)


def _dot_segments(word):
    return sum(seg in _DOT_SEGMENTS for seg in word.split("/"))


def expand_word(template, values):
    """`expand` of one word a program reads, refused when a value moved a path or made an
    option (UnsafeExpansion, see header)."""
    word = expand(template, values)
    if word == template:
        return word
    if _dot_segments(word) > _dot_segments(template):
        raise UnsafeExpansion(f"{template!r} would get a '.' or '..' path segment from a "
                              f"client's name: {word!r}")
    if word.startswith("-") and not template.startswith("-"):
        raise UnsafeExpansion(f"{template!r} would become an option: {word!r}")
    if word.startswith("/") and not template.startswith("/"):
        raise UnsafeExpansion(f"{template!r} would become an absolute path: {word!r}")
    return word
