"""ffmpeg command lines as SRS builds them (srs_app_ffmpeg.cpp), sans-IO.

Rules:
- `engine_argv(ffmpeg, engine, input, output, iparams)`: [ffmpeg, iparams..., perfile...,
  -f iformat (only for rtmp:// inputs), -i input, vfilter..., -vcodec V | -vn, video options
  (only when encoding: -b:v kbps*1000, -r, -s WxH and -aspect W:H with even sizes, -threads,
  -profile:v, -preset, vparams...), -acodec A | -an, audio options (only when encoding: -b:a,
  -ar, -ac, aparams...; with acodec copy only `-bsf:a aac_adtstoasc` is kept), -f oformat, -y,
  output]. An option at 0 or "" is left out, as SRS.
- `copy_argv(...)`: the same with vcodec/acodec copy (ingest without an enabled engine).
- srsedge adds `-hide_banner -nostats` (no banner, no progress line twice a second in our
  log); stderr is read by the supervisor, never redirected to a file.
- Variables: `stream_values(vhost, port, app, stream, param, engine)` and the time names of
  lib.media.variables, as SRS's encoder/ingester/exec. `expand_all(word, ...)` expands one word
  (an output URL, an exec argv word) once and checks its final text (lib.media.variables
  `expand_word`): UnsafeExpansion when a client's name would move a path or make an option.
"""
from dataclasses import replace

from lib.media.variables import expand_word, time_values
from lib.names import DEFAULT_VHOST


def local_url(port, vhost, app, stream, param=""):
    """SRS's local stream URL: rtmp://127.0.0.1:PORT/APP?vhost=VHOST/STREAM (no vhost for the
    default one)."""
    query = "" if vhost == DEFAULT_VHOST else f"?vhost={vhost}"
    return f"rtmp://127.0.0.1:{port}/{app}{query}/{stream}{param or ''}"


def stream_values(vhost, port, app="", stream="", param="", engine=""):
    return {"vhost": vhost, "port": port, "app": app, "stream": stream, "param": param or "",
            "engine": engine}


def expand_all(word, values, now, utc=False):
    return expand_word(word, {**values, **time_values(now, utc)})


def _even(n):
    return n - n % 2


def engine_argv(ffmpeg, engine, input_url, output, iparams=()):
    argv = [ffmpeg, "-hide_banner", "-nostats", *iparams, *engine.perfile]
    if engine.iformat and engine.iformat != "off" and input_url.startswith("rtmp://"):
        argv += ["-f", engine.iformat]
    argv += ["-i", input_url, *engine.vfilter]
    vcodec, acodec = engine.vcodec, engine.acodec
    argv += ["-vn"] if vcodec == "vn" else ["-vcodec", vcodec]
    if vcodec not in ("copy", "vn"):
        w, h = _even(engine.vwidth), _even(engine.vheight)
        argv += _opt("-b:v", engine.vbitrate * 1000) + _opt("-r", _num(engine.vfps))
        if w > 0 and h > 0:
            argv += ["-s", f"{w}x{h}", "-aspect", f"{w}:{h}"]
        argv += _opt("-threads", engine.vthreads) + _opt("-profile:v", engine.vprofile)
        argv += _opt("-preset", engine.vpreset) + engine.vparams
    argv += ["-an"] if acodec == "an" else ["-acodec", acodec]
    if acodec not in ("copy", "an"):
        argv += _opt("-b:a", engine.abitrate * 1000) + _opt("-ar", engine.asample_rate)
        argv += _opt("-ac", engine.achannels) + engine.aparams
    elif acodec == "copy":
        p = engine.aparams
        argv += [w for i in range(len(p) - 1) if p[i] == "-bsf:a" and p[i + 1] == "aac_adtstoasc"
                 for w in p[i:i + 2]]
    if engine.oformat and engine.oformat != "off":
        argv += ["-f", engine.oformat]
    return argv + ["-y", output]


def copy_argv(ffmpeg, engine, input_url, output, iparams=()):
    return engine_argv(ffmpeg, replace(engine, vcodec="copy", acodec="copy", oformat="flv"),
                       input_url, output, iparams)


def _num(x):
    return int(x) if float(x).is_integer() else x


def _opt(name, value):
    return [name, str(value)] if value else []
