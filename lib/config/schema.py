"""What each SRS directive means: a whitelist per block, with type and default.

Rules:
- These blocks are the one declaration of the config: sections.py generates the typed section
  classes (field per Value, named and typed after it) from them. Adding a directive = adding
  its line here (its field follows); tests/test_config.py fails if a section and its block
  ever disagree.
- The tables below are the whitelist. A directive not listed in its block is an error naming
  its dotted path (`unknown directive vhost.cluster.orign`). Blocks marked open() accept any
  children unchecked: features we accept for compatibility but do not implement.
- A Value takes `arity` words (1, "1+" or 2), each parsed by its Kind; a bad word or count is an
  error (`vhost.play.gop_cache: want on|off, got 'yes'`). A Value written as a block, or a
  Block written as `name;`, is an error. A Value given twice in one block is an error unless it
  is marked repeat (security allow/deny, exec publish).
- Defaults are written as config text, as in SRS's full.conf, and parsed by the same Kind, so
  section_values() gives typed values whether a directive was written or not.
- Defaults are SRS's (checked against srs_app_config.cpp of SRS 7.0.18, which sometimes differs
  from full.conf's comments; tests/test_srs_defaults.py lists each with SRS's source line);
  deviations say `srsedge:` and why.
- transform_legacy() first rewrites SRS1/2 vhost directives into their SRS3+ places, exactly
  like SRS's srs_config_transform_vhost (e.g. `vhost { mode remote; }` -> `cluster { mode }`).
"""

import difflib
import ipaddress
from dataclasses import dataclass

from .errors import ConfigError
from .parser import Directive


# ---------------------------------------------------------------------------------------------
# Kinds: parse one word, or raise ValueError("want <kind>")

class Kind:
    want = "a value"
    py_type = str               # the type of one parsed word (the typed view's field type)

    def parse(self, word):
        return word


class OnOff(Kind):
    want = "on|off"
    py_type = bool

    def parse(self, word):
        if word not in ("on", "off"):
            raise ValueError(self.want)
        return word == "on"


class Choice(Kind):
    def __init__(self, *choices):
        self.choices = choices
        self.want = "|".join(choices)

    def parse(self, word):
        if word not in self.choices:
            raise ValueError(self.want)
        return word


class Number(Kind):
    """An int (or a float when real=True) in [lo, hi]."""

    def __init__(self, lo=None, hi=None, real=False):
        self.lo, self.hi, self.real = lo, hi, real
        self.py_type = float if real else int
        noun = "a number" if real else "an integer"
        if lo is not None and hi is not None:
            self.want = f"{noun} in {lo}..{hi}"
        elif lo is not None:
            self.want = f"{noun} >= {lo}"
        else:
            self.want = noun

    def parse(self, word):
        try:
            value = float(word) if self.real else int(word, 10)
        except ValueError:
            raise ValueError(self.want) from None
        if value != value or (self.lo is not None and value < self.lo) \
                or (self.hi is not None and value > self.hi):
            raise ValueError(self.want)
        return value


class Url(Kind):
    want = "an http:// or https:// URL"

    def parse(self, word):
        if not word.startswith(("http://", "https://")):
            raise ValueError(self.want)
        return word


class Listen(Kind):
    """`PORT` or `IP:PORT` ([v6]:PORT) -> (ip, port); a bare port binds `default_host`.

    Port 0 is allowed (the OS picks a free port; for tests)."""
    py_type = tuple

    def __init__(self, default_host=""):
        self.default_host = default_host
        self.want = "a port or ip:port"

    def parse(self, word):
        host, sep, port = word.rpartition(":")
        if not sep:
            host = self.default_host
        else:
            host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(self.want) from None
        return host, _port(port, self.want, lo=0)


class HostPort(Kind):
    """`HOST[:PORT]` (origin, forward destination) -> (host, port), port defaults to 1935."""
    want = "host[:port]"
    py_type = tuple

    def parse(self, word):
        host, sep, port = word.rpartition(":")
        if not sep:
            host, port = word, "1935"
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not host:
            raise ValueError(self.want)
        return host, _port(port, self.want, lo=1)


class RedisUrl(Kind):
    """`redis://HOST[:PORT][/DB]` (the origin cluster's directory, issue 21)."""
    want = "redis://host[:port][/db]"

    def parse(self, word):
        scheme, sep, rest = word.partition("://")
        if scheme != "redis" or not sep:
            raise ValueError(self.want)
        hostport, _, db = rest.partition("/")
        host, sep, port = hostport.rpartition(":")
        if not sep:
            host, port = hostport, "6379"
        if not host or (db and not db.isdigit()):
            raise ValueError(self.want)
        _port(port, self.want, lo=1)
        return word


class SecurityRule(Kind):
    """The two words of `allow|deny publish|play all|IP|CIDR`."""
    want = "publish|play and all|IP|CIDR"
    py_type = tuple

    def parse_args(self, args):
        method, spec = args
        if method not in ("publish", "play"):
            raise ValueError("publish|play")
        if spec != "all":
            try:
                ipaddress.ip_network(spec, strict=False)
            except ValueError:
                raise ValueError("all|IP|CIDR") from None
        return method, spec


class WebOrigin(Kind):
    """A web page's origin as browsers send it (`scheme://host[:port]`, no path), lower-cased,
    without a default port or a trailing slash; or `*`."""
    want = "an origin (http://host[:port]) or *"

    def parse(self, word):
        if word == "*":
            return word
        scheme, sep, rest = word.lower().rstrip("/").partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest or "@" in rest:
            raise ValueError(self.want)
        default = {"http": ":80", "https": ":443"}[scheme]
        return f"{scheme}://{rest.removesuffix(default)}"


def _port(text, want, lo):
    if not text.isdigit() or not lo <= int(text) <= 65535:
        raise ValueError(want)
    return int(text)


ON_OFF, STR, URL = OnOff(), Kind(), Url()


# ---------------------------------------------------------------------------------------------
# Specs

@dataclass(frozen=True)
class Value:
    kind: Kind
    default: object = None      # config text: str for arity 1, list of str for "1+"
    arity: object = 1           # 1, "1+" (one or more words) or 2 (exactly two)
    repeat: bool = False        # may appear several times in one block

    def convert(self, args):
        """Typed value from the words; raises ValueError("want ..., got ...")."""
        if self.arity == 1 and len(args) != 1:
            raise ValueError(f"want 1 value, got {len(args)}")
        if self.arity == "1+" and not args:
            raise ValueError("want at least 1 value, got none")
        if self.arity == 2:
            if len(args) != 2:
                raise ValueError(f"want 2 values ({self.kind.want}), got {len(args)}")
            return _parse_word(self.kind.parse_args, args, " ".join(args))
        values = [_parse_word(self.kind.parse, word, word) for word in args]
        return values[0] if self.arity == 1 else values

    @property
    def py_type(self):
        """The typed value's type: a list for "1+", Optional when there is no default."""
        if self.arity == "1+" or self.repeat:
            return list
        return self.kind.py_type if self.default is not None else self.kind.py_type | None

    def default_value(self):
        if not self.default and self.default != "":     # None, or [] for a list
            return None if self.arity == 1 else []
        return self.convert(self.default if isinstance(self.default, list) else [self.default])


def _parse_word(parse, arg, shown):
    try:
        return parse(arg)
    except ValueError as e:
        raise ValueError(f"want {e}, got {shown!r}") from None


@dataclass(frozen=True)
class Block:
    children: dict = None       # name -> Value | Block; None: open, any children unchecked
    label: str = "none"         # "none": no args; "name": one arg, unique among siblings;
    #                             "name?": like name, or no arg at all; "any"
    repeat: bool = False


def block(label="none", repeat=False, **children):
    return Block(children, label, repeat)


def open_block(label="none", repeat=False):
    """Accepted for compatibility with SRS configs; children are not checked or used."""
    return Block(None, label, repeat)


def on_off(default):
    return Value(ON_OFF, default)


def integer(default, lo=None, hi=None):
    return Value(Number(lo, hi), default)


def number(default, lo=None, hi=None):
    return Value(Number(lo, hi, real=True), default)


def text(default=None):
    return Value(STR, default)


def choice(default, *choices):
    return Value(Choice(*choices), default)


def words(kind=STR, default=None, repeat=False):
    return Value(kind, default, "1+", repeat)


# ---------------------------------------------------------------------------------------------
# The whitelist. Comments give SRS's meaning only where the name does not.

PLAY = block(
    gop_cache=on_off("on"),
    gop_cache_max_frames=integer("2500", lo=0),
    queue_length=number("30", lo=0),        # seconds; SRS: SRS_PERF_PLAY_QUEUE (full.conf's 10 is an example)
    time_jitter=choice("full", "full", "zero", "off"),
    atc=on_off("off"),
    mix_correct=on_off("off"),
    atc_auto=on_off("off"),
    mw_latency=integer("350", lo=0),        # ms of merged write
    mw_msgs=integer("8", lo=0, hi=128),     # SRS: 8, or 0 with min_latency on (the view applies that)
    send_min_interval=number("0", lo=0),    # ms
    reduce_sequence_header=on_off("off"),
    # srsedge extension: seconds a player waits for a stream that is not published (yet): an
    # edge keeps asking its origins every 3 s (as SRS), HTTP-FLV holds its answer; then not found
    publisher_wait=number("300", lo=0),
)

PUBLISH = block(
    mr=on_off("off"),
    mr_latency=integer("350", lo=0),        # ms
    firstpkt_timeout=integer("20000", lo=0),  # ms
    normal_timeout=integer("5000", lo=0),   # ms
    parse_sps=on_off("on"),
    try_annexb_first=on_off("on"),
    kickoff_for_idle=number("0", lo=0),     # seconds, 0: never
)

HTTP_HOOKS = block(
    enabled=on_off("off"),
    on_connect=words(URL, []),
    on_close=words(URL, []),
    on_publish=words(URL, []),
    on_unpublish=words(URL, []),
    on_play=words(URL, []),
    on_stop=words(URL, []),
    on_dvr=words(URL, []),
    on_hls=words(URL, []),
    on_hls_notify=words(URL, []),           # GET, with [app] [stream] [ts_url] ... variables
    # srsedge extension: seconds a hook URL may take (SRS: fixed 30 s, SRS_HTTP_CLIENT_TIMEOUT)
    timeout=number("30", lo=0.1),
)

CLUSTER = block(
    mode=choice("local", "local", "remote"),  # remote: this vhost is an edge
    origin=words(HostPort(), []),           # tried in order, port defaults to 1935 (flv: 80, flvs: 443, as SRS)
    token_traverse=on_off("off"),
    vhost=text(None),                       # vhost to ask the origin for; SRS: "[vhost]" = same
    debug_srs_upnode=on_off("on"),
    coworkers=words(STR, []),
    origin_cluster=on_off("off"),
    protocol=choice("rtmp", "rtmp", "flv", "flvs"),   # pull over RTMP, HTTP-FLV or HTTPS-FLV (SRS 5+)
    follow_client=on_off("off"),
    # srsedge extensions (not in SRS):
    edge_idle_timeout=number("3", lo=0),    # s an edge keeps pulling a stream after its last player left
    origin_data_timeout=number("5", lo=0),  # s without media from an origin before trying the next
    # the origin cluster (issue 21, docs/cluster.md): a Redis directory of origins and stream owners
    directory=Value(RedisUrl(), default=None),
    directory_ttl=number("6", lo=1),        # s: lease and membership TTL, renewed every third
)

FORWARD = block(
    enabled=on_off("off"),
    destination=words(HostPort(), []),
    backend=Value(URL),
)

HLS = block(
    enabled=on_off("off"),
    hls_fragment=number("10", lo=0),        # seconds
    hls_td_ratio=number("1.0", lo=0),       # SRS 7 code default
    hls_aof_ratio=number("2.1", lo=0),      # SRS 7 code default (full.conf comments say 1.2)
    hls_window=number("60", lo=0),          # seconds
    hls_on_error=choice("continue", "ignore", "disconnect", "continue"),
    hls_path=text("./objs/nginx/html"),
    hls_m3u8_file=text("[app]/[stream].m3u8"),
    hls_ts_file=text("[app]/[stream]-[seq].ts"),
    hls_ts_floor=on_off("off"),
    hls_entry_prefix=text(""),
    hls_acodec=text("aac"),
    hls_vcodec=text("h264"),
    hls_cleanup=on_off("on"),
    hls_dispose=integer("120", lo=0),       # seconds after unpublish, 0: never (SRS 7 code)
    hls_nb_notify=integer("64", lo=0),
    hls_wait_keyframe=on_off("on"),
    hls_keys=on_off("off"),
    hls_fragments_per_key=integer("5", lo=1),
    hls_key_file=text("[app]/[stream]-[seq].key"),
    hls_key_file_path=text(None),           # None: hls_path (SRS)
    hls_key_url=text(None),                 # None: hls_path (SRS)
    hls_dts_directly=on_off("on"),
    # srsedge: hls_ctx/hls_ts_ctx default off (SRS: on). They add a per-viewer session to every
    # URL, which makes each request a cache miss in the nginx tier that is our HLS edge.
    hls_ctx=on_off("off"),
    hls_ts_ctx=on_off("off"),
    hls_use_fmp4=on_off("off"),             # fMP4 segments (H.264/H.265/AV1/VP9 + AAC/Opus)
    hls_fmp4_file=text("[app]/[stream]-[seq].m4s"),     # SRS 7 after 7.0.18
    hls_init_file=text("[app]/[stream]/init.mp4"),      # SRS 7 after 7.0.18
    hls_recover=on_off("on"),
    hls_storage=text(None),                 # removed in SRS3, accepted and ignored
    hls_mount=text(None),                   # removed in SRS3, accepted and ignored
)

HTTP_REMUX = block(
    enabled=on_off("off"),
    fast_cache=number("0", lo=0),           # seconds of audio cache
    drop_if_not_match=on_off("off"),
    has_audio=on_off("on"),
    has_video=on_off("on"),
    guess_has_av=on_off("on"),
    mount=text("[vhost]/[app]/[stream].flv"),
)

HTTP_STATIC = block(
    enabled=on_off("off"),
    mount=text("[vhost]/"),
    dir=text("./objs/nginx/html"),
)

SECURITY = block(
    enabled=on_off("off"),
    allow=Value(SecurityRule(), None, 2, repeat=True),
    deny=Value(SecurityRule(), None, 2, repeat=True),
)

REFER = block(
    enabled=on_off("off"),
    all=words(),
    publish=words(),
    play=words(),
)

DVR = block(
    enabled=on_off("off"),
    dvr_apply=words(STR, ["all"]),
    dvr_path=text("./objs/nginx/html/[app]/[stream].[timestamp].flv"),
    dvr_plan=choice("session", "session", "segment"),
    dvr_duration=integer("30", lo=0),
    dvr_wait_keyframe=on_off("on"),
    time_jitter=choice("full", "full", "zero", "off"),
)

EXEC = block(
    enabled=on_off("off"),
    publish=words(STR, [], repeat=True),
)

# One ffmpeg command (SRS's engine): transcode engines and ingest engines. vfilter/vparams/
# aparams/perfile hold `name [value];` pairs passed to ffmpeg as `-name value`.
ENGINE = block(
    label="any", repeat=True,
    enabled=on_off("off"),
    iformat=text("flv"),
    vfilter=open_block(),
    vcodec=text(""),                        # libx264 | copy | vn | any ffmpeg encoder
    vbitrate=integer("0", lo=0),            # kbps, 0: not set
    vfps=number("0", lo=0),
    vwidth=integer("0", lo=0),
    vheight=integer("0", lo=0),
    vthreads=integer("1", lo=0),
    vprofile=text(""),
    vpreset=text(""),
    vparams=open_block(),
    acodec=text(""),                        # aac | libfdk_aac | libmp3lame | libopus | copy | an
    abitrate=integer("0", lo=0),            # kbps, 0: not set
    asample_rate=integer("0", lo=0),
    achannels=integer("0", lo=0, hi=2),
    aparams=open_block(),
    oformat=text("flv"),
    output=text(""),                        # required when enabled
    perfile=open_block(),
)

TRANSCODE = block(
    label="any", repeat=True,               # scope: none (vhost), `app` or `app/stream`
    enabled=on_off("off"),
    ffmpeg=text("ffmpeg"),                  # srsedge: ffmpeg from PATH (SRS: empty = disabled)
    engine=ENGINE,
)

INGEST = block(
    label="name?", repeat=True,             # a name (SRS's ingest id), may be left out
    enabled=on_off("off"),
    input=block(
        type=choice("file", "file", "stream"),
        url=text(""),
    ),
    ffmpeg=text("ffmpeg"),                  # srsedge: ffmpeg from PATH (SRS: empty)
    engine=ENGINE,
)

VHOST = block(
    label="name", repeat=True,
    enabled=on_off("on"),
    min_latency=on_off("off"),
    tcp_nodelay=on_off("off"),
    chunk_size=integer(None, lo=128, hi=65536),  # None: the global chunk_size
    in_ack_size=integer("0", lo=0),
    out_ack_size=integer("2500000", lo=0),
    max_processes=integer("0", lo=0),       # srsedge extension: this vhost's children; 0: no own cap
    play=PLAY,
    publish=PUBLISH,
    http_hooks=HTTP_HOOKS,
    cluster=CLUSTER,
    forward=FORWARD,
    hls=HLS,
    http_remux=HTTP_REMUX,
    http_static=HTTP_STATIC,
    security=SECURITY,
    refer=REFER,
    dvr=DVR,
    exec=EXEC,
    transcode=TRANSCODE,
    ingest=INGEST,
    bandcheck=open_block(),
    rtc=open_block(),
    srt=open_block(),
    hds=open_block(),
    dash=open_block(),
)

HTTP_API = block(
    enabled=on_off("off"),
    # srsedge: a bare port listens on 127.0.0.1 only (SRS: all interfaces); the API can
    # reload and kick clients, so exposing it needs an explicit `listen 0.0.0.0:1985;`.
    listen=Value(Listen(default_host="127.0.0.1"), "1985"),
    crossdomain=on_off("on"),
    # srsedge extensions: which other sites' pages may use the API from a browser
    # (lib/server/api/cross_origin.py): this server's own pages always may; `*` lets every page
    # read (SRS's crossdomain), never kick. JSONP (SRS answers it always) is off unless asked.
    allow_origin=words(WebOrigin(), []),
    jsonp=on_off("off"),
    raw_api=block(
        enabled=on_off("off"),
        allow_reload=on_off("off"),
        allow_query=on_off("off"),
        allow_update=on_off("off"),
    ),
    auth=block(
        enabled=on_off("off"),
        username=text(""),
        password=text(""),
    ),
    https=block(                            # SRS's HTTPS API: the same API over TLS
        enabled=on_off("off"),
        listen=Value(Listen(default_host="127.0.0.1"), "1990"),
        key=text("./conf/server.key"),
        cert=text("./conf/server.crt"),
    ),
)

HTTP_SERVER = block(
    enabled=on_off("off"),
    listen=Value(Listen(), "8080"),
    dir=text("./objs/nginx/html"),
    crossdomain=on_off("on"),
    https=block(                            # SRS's HTTPS server: files, HTTP-FLV/TS over TLS
        enabled=on_off("off"),
        listen=Value(Listen(), "8088"),
        key=text("./conf/server.key"),
        cert=text("./conf/server.crt"),
    ),
)

ROOT = block(
    listen=words(Listen(), ["1935"]),
    pid=text("./objs/srs.pid"),
    chunk_size=integer("60000", lo=128, hi=65536),
    max_connections=integer("1000", lo=1),
    # srsedge extension: child processes (transcode, exec, ingest) at once; 0: 4 per CPU core,
    # at least 8 (docs/config.md "Child process caps")
    max_processes=integer("0", lo=0),
    srs_log_tank=choice("file", "console", "file"),
    srs_log_level=choice("trace", "verbose", "info", "trace", "warn", "error"),
    srs_log_level_v2=text(None),
    srs_log_file=text("./objs/srs.log"),
    # srsedge: daemon defaults off (SRS: on). We run in the foreground under a supervisor or a
    # test; the sample configs (origin.conf, edge.conf) do not say `daemon off;`.
    daemon=on_off("off"),
    workers=integer("1", lo=1),             # srsedge extension: processes sharing the listen ports
    ff_log_dir=text("./objs"),
    ff_log_level=text("info"),
    utc_time=on_off("off"),
    work_dir=text("./"),
    asprocess=on_off("off"),
    server_id=text(None),
    pithy_print_ms=integer("10000", lo=1),
    grace_start_wait=integer("2300", lo=0),  # ms
    grace_final_wait=integer("3200", lo=0),  # ms
    force_grace_quit=on_off("off"),
    empty_ip_ok=on_off("on"),
    disable_daemon_for_docker=on_off("on"),
    inotify_auto_reload=on_off("off"),
    auto_reload_for_docker=on_off("on"),
    tcmalloc_release_rate=number("0.8", lo=0, hi=10),
    query_latest_version=on_off("off"),     # srsedge never phones home (SRS 7: off too)
    first_wait_for_qlv=integer("300", lo=0),
    is_full=on_off("off"),
    in_docker=on_off("off"),
    http_api=HTTP_API,
    http_server=HTTP_SERVER,
    vhost=VHOST,
    heartbeat=open_block(),
    stats=open_block(),
    exporter=open_block(),
    circuit_breaker=open_block(),
    threads=open_block(),
    tencentcloud_cls=open_block(),
    tencentcloud_apm=open_block(),
    rtc_server=open_block(),
    srt_server=open_block(),
    stream_caster=open_block(repeat=True),
)


# ---------------------------------------------------------------------------------------------
# Accepted but not implemented: THE table. Every directive here is reported, at `-t` and at
# startup, as `FILE:LINE: <directive> is not supported by srsedge, ignored` when the config asks
# for it: a block that is present and not `enabled off`, a value that differs from its default.
# Children of a block that is `enabled off` are not reported. Implementing one = deleting its
# line here, then `scripts/config_reference.py` (docs/config.md, conf/full.conf);
# tests/test_unsupported_table.py fails while a directive listed here is read by the server.

UNSUPPORTED = {
    # ffmpeg's stderr goes to the server log (with the stream's context id), not to files
    "ff_log_dir": "per-process FFmpeg log files (FFmpeg's output goes to the server log)",
    "ff_log_level": "FFmpeg log files",
    # other protocols and services
    "rtc_server": "WebRTC", "vhost.rtc": "WebRTC",
    "srt_server": "SRT", "vhost.srt": "SRT",
    "stream_caster": "stream caster (MPEG-TS over UDP, GB28181)",
    "vhost.hds": "HDS", "vhost.dash": "MPEG-DASH",
    "vhost.bandcheck": "bandwidth check",
    "heartbeat": "heartbeat reports",
    "stats": "network/disk stats devices",
    "exporter": "SRS's Prometheus exporter (srsedge serves /metrics on the API port)",
    "circuit_breaker": "circuit breaker",
    "threads": "SRS threads",
    "tencentcloud_cls": "Tencent Cloud CLS", "tencentcloud_apm": "Tencent Cloud APM",
    "http_api.raw_api": "raw API (reload/query/update over HTTP)",
    "vhost.http_static": "per-vhost static mounts (the http_server dir is served)",
    # settings inside supported features
    "vhost.in_ack_size": "in_ack_size",
    "vhost.out_ack_size": "out_ack_size",
    "vhost.play.atc": "ATC", "vhost.play.atc_auto": "ATC", "vhost.play.mix_correct": "mix_correct",
    "vhost.play.send_min_interval": "send_min_interval",
    "vhost.play.reduce_sequence_header": "reduce_sequence_header",
    "vhost.publish.try_annexb_first": "Annex-B probing",
    "vhost.publish.kickoff_for_idle": "kickoff_for_idle",
    "vhost.http_hooks.on_hls": "HLS hook", "vhost.http_hooks.on_hls_notify": "HLS notify",
    "vhost.cluster.coworkers": "origin cluster", "vhost.cluster.origin_cluster": "origin cluster",
    "vhost.cluster.follow_client": "follow_client",
    "vhost.publish.parse_sps": "parse_sps off (srsedge always parses the SPS)",
    "vhost.forward.backend": "dynamic forward backend",
    "vhost.http_remux.fast_cache": "fast_cache", "vhost.http_remux.drop_if_not_match": "drop_if_not_match",
    "vhost.hls.hls_ts_floor": "hls_ts_floor", "vhost.hls.hls_nb_notify": "HLS notify",
    "vhost.hls.hls_keys": "HLS encryption", "vhost.hls.hls_fragments_per_key": "HLS encryption",
    "vhost.hls.hls_key_file": "HLS encryption", "vhost.hls.hls_key_file_path": "HLS encryption",
    "vhost.hls.hls_key_url": "HLS encryption", "vhost.hls.hls_dts_directly": "hls_dts_directly",
    "vhost.hls.hls_ctx": "HLS sessions", "vhost.hls.hls_ts_ctx": "HLS sessions",
    "vhost.hls.hls_recover": "hls_recover",
    "vhost.hls.hls_storage": "removed in SRS 3", "vhost.hls.hls_mount": "removed in SRS 3",
    # process settings
    "srs_log_level_v2": "srs_log_level_v2", "work_dir": "work_dir", "asprocess": "asprocess",
    "pithy_print_ms": "pithy_print_ms", "force_grace_quit": "force_grace_quit",
    "empty_ip_ok": "empty_ip_ok", "disable_daemon_for_docker": "docker detection",
    "inotify_auto_reload": "auto reload", "auto_reload_for_docker": "auto reload",
    "tcmalloc_release_rate": "tcmalloc", "server_id": "a fixed server id (a random one per process)", "query_latest_version": "version query",
    "first_wait_for_qlv": "version query", "is_full": "is_full", "in_docker": "in_docker",
}

HTTP_REMUX_EXTENSIONS = (".flv", ".ts")     # http_remux mounts srsedge serves


def unsupported(root):
    """`FILE:LINE: <directive> is not supported by srsedge, ignored` lines for what the config
    asks of UNSUPPORTED (see the table), in file order. Call after validate()."""
    out = []
    _find_unsupported(root, ROOT, "", out)
    return out


def _find_unsupported(node, spec, path, out):
    for child in node.children:
        cpath = f"{path}.{child.name}" if path else child.name
        cspec = spec.children.get(child.name) if spec.children is not None else None
        if _disabled(child):
            continue
        if cpath in UNSUPPORTED:
            if isinstance(cspec, Block) or not _is_default(child, cspec):
                out.append(f"{child.file}:{child.line}: {cpath} is not supported by srsedge, ignored")
            continue
        if cpath == "vhost.http_remux.mount" and child.args \
                and not child.args[0].endswith(HTTP_REMUX_EXTENSIONS):
            out.append(f"{child.file}:{child.line}: {cpath} {child.args[0]} is not supported by "
                       f"srsedge, ignored (only .flv and .ts mounts are served)")
        if isinstance(cspec, Block) and cspec.children is not None:
            _find_unsupported(child, cspec, cpath, out)


def _disabled(node):
    enabled = node.get("enabled") if node.block else None
    return enabled is not None and enabled.args == ["off"]


def _is_default(node, spec):
    if spec is None:
        return False
    try:
        return spec.convert(node.args) == spec.default_value()
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Legacy transform (SRS's srs_config_transform_vhost, the cheap parts)

# vhost-level SRS1/2 directive -> (block it moves into, new name)
LEGACY_VHOST_MOVES = {
    **{name: ("cluster", name) for name in
       ("mode", "origin", "token_traverse", "vhost", "debug_srs_upnode")},
    **{name: ("play", name) for name in
       ("time_jitter", "mix_correct", "atc", "atc_auto", "mw_latency", "gop_cache",
        "gop_cache_max_frames", "queue_length", "send_min_interval", "reduce_sequence_header")},
    "publish_1stpkt_timeout": ("publish", "firstpkt_timeout"),
    "publish_normal_timeout": ("publish", "normal_timeout"),
    "refer_play": ("refer", "play"),
    "refer_publish": ("refer", "publish"),
}


def transform_legacy(root):
    """Rewrite SRS1/2 spellings in place, keeping each directive's file:line."""
    for node in root.children:
        if node.name == "http_stream":
            node.name = "http_server"
        if node.name == "vhost":
            _transform_vhost(node)


def _transform_vhost(vhost):
    for node in list(vhost.children):
        name = node.name
        if name == "refer" and not node.block:
            _move(vhost, node, "refer", "all")
        elif name in LEGACY_VHOST_MOVES:
            _move(vhost, node, *LEGACY_VHOST_MOVES[name])
        elif name == "mr" and node.block:            # mr { enabled; latency; }
            vhost.children.remove(node)
            for old, new in (("enabled", "mr"), ("latency", "mr_latency")):
                if node.get(old):
                    _set(_get_or_create(vhost, "publish", node), new, node.get(old))
        elif name == "forward" and not node.block and node.args:  # forward host:port...;
            _set(node, "enabled", _like(node, "enabled", ["on"]))
            _set(node, "destination", _like(node, "destination", node.args))
            node.args, node.block = [], True
        elif name == "http_remux" and node.get("hstrs"):
            node.children.remove(node.get("hstrs"))
        if name in ("refer", "refer_play", "refer_publish") and not node.block:
            refer = vhost.get("refer")
            if refer.get("enabled") is None:
                refer.children.insert(0, _like(node, "enabled", ["on"]))


def _move(vhost, node, block_name, new_name):
    vhost.children.remove(node)
    _set(_get_or_create(vhost, block_name, node), new_name, node)


def _like(where, name, args):
    """A new directive written at the same place as `where`."""
    return Directive(name, list(args), file=where.file, line=where.line, end_line=where.end_line)


def _get_or_create(parent, name, where):
    found = parent.get(name)
    if found is None:
        found = _like(where, name, [])
        found.block = True
        parent.children.append(found)
    return found


def _set(parent, name, node):
    """Like SRS's get_or_create(name)->args = node.args."""
    existing = parent.get(name)
    if existing is not None:
        existing.args = list(node.args)
    else:
        parent.children.append(_like(node, name, node.args))


# ---------------------------------------------------------------------------------------------
# Validation and typed values

def validate(root):
    """Raise ConfigError for the first directive the tables do not allow. Returns warnings
    (`FILE:LINE: ...` lines) for what SRS accepts and we accept the same way: a directive
    given twice where one is expected is checked, then dropped, so the first one is used, as
    SRS's get() does (SRS's own full.conf has four `play` blocks in one vhost)."""
    warnings = []
    _check_block(root, ROOT, "", warnings)
    return warnings


def _check_block(node, spec, path, warnings):
    seen, dropped = {}, []
    for child in node.children:
        cpath = f"{path}.{child.name}" if path else child.name
        cspec = spec.children.get(child.name)
        if cspec is None:
            hint = difflib.get_close_matches(child.name, spec.children, n=1)
            more = f" (did you mean {hint[0]}?)" if hint else ""
            raise error(child, cpath, f"unknown directive {cpath}{more}")
        if isinstance(cspec, Block):
            _check_sub_block(child, cspec, cpath, warnings)
        else:
            _check_value(child, cspec, cpath)
        named = getattr(cspec, "label", "") in ("name", "name?") and child.args
        key = (child.name, child.arg0 if named else None)
        if key in seen and (not cspec.repeat or key[1] is not None):
            what = f"{cpath} {key[1]}" if key[1] is not None else cpath
            first = seen[key]
            warnings.append(f"{child.file}:{child.line}: duplicate {what} ignored, the first "
                            f"(line {first.line} of {first.file}) is used, as SRS does")
            dropped.append(child)
        seen.setdefault(key, child)
    for child in dropped:
        node.children.remove(child)


def _check_sub_block(node, spec, path, warnings):
    if not node.block:
        raise error(node, path, f"{path}: want a block {{ ... }}, got '{node.name};'")
    if spec.label == "none" and node.args:
        raise error(node, path, f"{path}: want no arguments before '{{', got {len(node.args)}")
    if spec.label == "name" and len(node.args) != 1:
        raise error(node, path, f"{path}: want one name before '{{', got {len(node.args)}")
    if spec.label == "name?" and len(node.args) > 1:
        raise error(node, path, f"{path}: want at most one name before '{{', got {len(node.args)}")
    if spec.children is not None:
        _check_block(node, spec, path, warnings)


def _check_value(node, spec, path):
    if node.block:
        raise error(node, path, f"{path}: want a value ending with ';', got a block")
    try:
        spec.convert(node.args)
    except ValueError as e:
        hint = f" (missing ';' on line {node.line}?)" if node.end_line > node.line else ""
        raise error(node, path, f"{path}: {e}{hint}") from None


def error(node, path, message):
    return ConfigError(message, node.file, node.line, path)


def section_values(node, spec):
    """{name: typed value} for every plain (non-repeat) Value of a block; defaults when absent."""
    out = {}
    for name, vspec in spec.children.items():
        if isinstance(vspec, Value) and not vspec.repeat:
            child = node.get(name) if node is not None else None
            out[name] = vspec.convert(child.args) if child is not None else vspec.default_value()
    return out
