"""SRS's `[name]` variables in paths, URLs and commands (sans-IO: `now` is passed in).

Rules: `unsafe(name)` says whether a client-chosen name must not go into a path (DVR refuses
to record it, exec refuses to run for it). `expand(text, values)` replaces each `[name]` of
`values` (a dict without brackets); unknown names stay as written. `time_values(now, utc)` gives SRS's srs_path_build_timestamp
names: [2006] year, [01] month, [02] day, [15] hour, [04] minute, [05] second, [999] ms,
[timestamp] ms since the epoch; local time unless `utc` (the `utc_time` directive).
"""
import time


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
    for name, value in values.items():
        text = text.replace(f"[{name}]", str(value))
    return text
