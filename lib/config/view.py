"""Typed, validated view of a config: Config, Vhost and their sections.

Rules:
- load_config(path) / parse_text(text) parse (parser.py), apply SRS's legacy transform, check
  every directive against the tables in schema.py, then build frozen dataclasses. Any problem
  is a ConfigError (`FILE:LINE: message`).
- Section dataclasses have exactly the fields of their schema block, with the same names as
  the directives (`vhost.hls.hls_fragment`), typed, with SRS's defaults filled in.
- Endpoints are (host, port) tuples. host "" means all interfaces.
- Config.root and Vhost.directive keep the raw tree, so reload code can diff
  (Directive.equals) what changed.
- Config.vhost(name): the vhost called `name`, else `__defaultVhost__`, else None; a vhost with
  `enabled off` gives None (without falling back, as in SRS).
"""

from dataclasses import dataclass, field

from . import schema
from .errors import ConfigError
from .parser import parse_file, parse_string

from lib.names import DEFAULT_VHOST  # noqa: E402


@dataclass(frozen=True)
class Play:
    gop_cache: bool
    gop_cache_max_frames: int
    queue_length: float             # seconds
    time_jitter: str                # full | zero | off
    atc: bool
    mix_correct: bool
    atc_auto: bool
    mw_latency: int                 # ms
    mw_msgs: int
    send_min_interval: float        # ms
    reduce_sequence_header: bool


@dataclass(frozen=True)
class Publish:
    mr: bool
    mr_latency: int                 # ms
    firstpkt_timeout: int           # ms
    normal_timeout: int             # ms
    parse_sps: bool
    try_annexb_first: bool
    kickoff_for_idle: float         # seconds, 0: never


@dataclass(frozen=True)
class HttpHooks:
    enabled: bool
    on_connect: list
    on_close: list
    on_publish: list
    on_unpublish: list
    on_play: list
    on_stop: list
    on_dvr: list
    on_hls: list
    on_hls_notify: list
    timeout: float                  # srsedge: seconds per hook URL (SRS: fixed 30)


@dataclass(frozen=True)
class Cluster:
    mode: str                       # local | remote
    origin: list                    # [(host, port)], in failover order
    token_traverse: bool
    vhost: object                   # str | None: vhost to ask the origin for (None: the same)
    debug_srs_upnode: bool
    coworkers: list
    origin_cluster: bool
    protocol: str
    follow_client: bool
    edge_idle_timeout: float        # srsedge: seconds an unused ingester keeps pulling
    origin_data_timeout: float      # srsedge: seconds without media before the next origin


@dataclass(frozen=True)
class Forward:
    enabled: bool
    destination: list               # [(host, port)]
    backend: object                 # str | None


@dataclass(frozen=True)
class Hls:
    enabled: bool
    hls_fragment: float
    hls_td_ratio: float
    hls_aof_ratio: float
    hls_window: float
    hls_on_error: str
    hls_path: str
    hls_m3u8_file: str
    hls_ts_file: str
    hls_ts_floor: bool
    hls_entry_prefix: str
    hls_acodec: str
    hls_vcodec: str
    hls_cleanup: bool
    hls_dispose: int
    hls_nb_notify: int
    hls_wait_keyframe: bool
    hls_keys: bool
    hls_fragments_per_key: int
    hls_key_file: str
    hls_key_file_path: str          # defaults to hls_path
    hls_key_url: str                # defaults to hls_path
    hls_dts_directly: bool
    hls_ctx: bool
    hls_ts_ctx: bool
    hls_use_fmp4: bool
    hls_fmp4_file: str
    hls_init_file: str
    hls_recover: bool
    hls_storage: object
    hls_mount: object


@dataclass(frozen=True)
class HttpRemux:
    enabled: bool
    fast_cache: float
    drop_if_not_match: bool
    has_audio: bool
    has_video: bool
    guess_has_av: bool
    mount: str


@dataclass(frozen=True)
class HttpStatic:
    enabled: bool
    mount: str
    dir: str


@dataclass(frozen=True)
class Security:
    enabled: bool
    rules: list                     # [(allow|deny, publish|play, all|IP|CIDR)] in config order


@dataclass(frozen=True)
class Refer:
    enabled: bool
    all: list
    publish: list
    play: list


@dataclass(frozen=True)
class Dvr:
    enabled: bool
    dvr_apply: list
    dvr_path: str
    dvr_plan: str
    dvr_duration: int
    dvr_wait_keyframe: bool
    time_jitter: str


@dataclass(frozen=True)
class Exec:
    enabled: bool
    publish: list                   # one list of words per `publish ...;`


@dataclass(frozen=True)
class Engine:
    """One ffmpeg command. The `*params`/vfilter/perfile lists are ffmpeg words in order."""
    name: str                       # the engine's label ("" when anonymous)
    enabled: bool
    iformat: str
    vfilter: list
    vcodec: str
    vbitrate: int                   # kbps
    vfps: float
    vwidth: int
    vheight: int
    vthreads: int
    vprofile: str
    vpreset: str
    vparams: list
    acodec: str
    abitrate: int                   # kbps
    asample_rate: int
    achannels: int
    aparams: list
    oformat: str
    output: str
    perfile: list
    where: str = field(default="", compare=False)   # FILE:LINE of the engine block


@dataclass(frozen=True)
class Transcode:
    scope: str                      # "" (whole vhost), "app" or "app/stream"
    enabled: bool
    ffmpeg: str
    engines: list                   # [Engine]


@dataclass(frozen=True)
class Ingest:
    name: str
    enabled: bool
    input_type: str                 # file | stream
    input_url: str
    ffmpeg: str
    engines: list                   # [Engine]; empty: one copy of the input to... nowhere (error)


@dataclass(frozen=True)
class Vhost:
    name: str
    enabled: bool
    min_latency: bool
    tcp_nodelay: bool
    chunk_size: int                 # the vhost's, else the global one
    in_ack_size: int
    out_ack_size: int
    play: Play
    publish: Publish
    http_hooks: HttpHooks
    cluster: Cluster
    forward: Forward
    hls: Hls
    http_remux: HttpRemux
    http_static: HttpStatic
    security: Security
    refer: Refer
    dvr: Dvr
    exec: Exec
    transcode: list                 # [Transcode] in config order
    ingest: list                    # [Ingest]
    directive: object = field(repr=False, compare=False)

    @property
    def is_edge(self):
        return self.cluster.mode == "remote"


@dataclass(frozen=True)
class HttpAuth:
    enabled: bool
    username: str
    password: str


@dataclass(frozen=True)
class RawApi:
    enabled: bool
    allow_reload: bool
    allow_query: bool
    allow_update: bool


@dataclass(frozen=True)
class HttpApi:
    enabled: bool
    listen: tuple                   # (host, port); a bare port means 127.0.0.1 (srsedge choice)
    crossdomain: bool
    raw_api: RawApi
    auth: HttpAuth


@dataclass(frozen=True)
class HttpServer:
    enabled: bool
    listen: tuple                   # (host, port); host "" = all interfaces
    dir: str
    crossdomain: bool


# Config attribute -> top-level directive, where the names differ.
_ROOT_NAMES = {
    "log_tank": "srs_log_tank",
    "log_level": "srs_log_level",
    "log_file": "srs_log_file",
}
_ROOT_ATTRS = ("listen", "pid", "log_tank", "log_level", "log_file", "max_connections",
               "chunk_size", "daemon", "workers", "ff_log_dir", "utc_time", "work_dir",
               "pithy_print_ms", "grace_start_wait", "grace_final_wait", "force_grace_quit")


class Config:
    """The whole config. Top-level values are attributes (see _ROOT_ATTRS), plus:
    path, root (raw Directive tree), warnings (list[str]), unsupported (list[str]: directives
    accepted but not implemented, see schema.UNSUPPORTED), http_api, http_server, vhosts."""

    def __init__(self, root, path):
        self.path = path
        self.root = root
        self.warnings = []
        self.unsupported = schema.unsupported(root)   # "FILE:LINE: x is not supported ..." lines
        values = schema.section_values(root, schema.ROOT)
        for attr in _ROOT_ATTRS:
            setattr(self, attr, values[_ROOT_NAMES.get(attr, attr)])
        self.http_api = _http_api(root.get("http_api"))
        self.http_server = _section(HttpServer, root.get("http_server"), schema.HTTP_SERVER)
        self.vhosts = {}
        for node in root.get_all("vhost"):
            vhost = _vhost(node, self.chunk_size)
            self.vhosts[vhost.name] = vhost
            self.warnings.extend(_vhost_warnings(vhost))
        self.warnings.extend(_shared_hls_warnings(self.vhosts.values()))

    def vhost(self, name):
        vhost = self.vhosts.get(name) or self.vhosts.get(DEFAULT_VHOST)
        return vhost if vhost is not None and vhost.enabled else None

    def __repr__(self):
        return f"<Config {self.path} listen={self.listen} vhosts={list(self.vhosts)}>"


def load_config(path):
    """Parse, check and type the config file at `path`. Raises ConfigError."""
    return _build(parse_file(path), path)


def parse_text(text, filename="<string>"):
    """Like load_config, for config text (tests, API)."""
    return _build(parse_string(text, filename), filename)


def _build(root, path):
    schema.transform_legacy(root)
    schema.validate(root)
    return Config(root, path)


def _section(cls, node, spec, **extra):
    return cls(**schema.section_values(node, spec), **extra)


def _http_api(node):
    raw_api = node.get("raw_api") if node else None
    auth = node.get("auth") if node else None
    return _section(HttpApi, node, schema.HTTP_API,
                    raw_api=_section(RawApi, raw_api, schema.HTTP_API.children["raw_api"]),
                    auth=_section(HttpAuth, auth, schema.HTTP_API.children["auth"]))


def _vhost(node, global_chunk_size):
    values = schema.section_values(node, schema.VHOST)
    if values["chunk_size"] is None:
        values["chunk_size"] = global_chunk_size
    sections = {name: _section(cls, node.get(name), schema.VHOST.children[name])
                for name, cls in (("publish", Publish), ("http_hooks", HttpHooks),
                                  ("cluster", Cluster), ("forward", Forward),
                                  ("http_remux", HttpRemux), ("http_static", HttpStatic),
                                  ("refer", Refer), ("dvr", Dvr))}
    vhost = Vhost(name=node.arg0, directive=node, **values, **sections,
                  play=_play(node, values["min_latency"]), hls=_hls(node.get("hls")),
                  security=_security(node.get("security")), exec=_exec(node.get("exec")),
                  transcode=[_transcode(t) for t in node.get_all("transcode")],
                  ingest=[_ingest(i) for i in node.get_all("ingest")])
    if vhost.is_edge and not vhost.cluster.origin:
        where = node.get("cluster").get("mode")
        raise ConfigError(f"vhost {vhost.name}: cluster.mode remote needs cluster.origin",
                          where.file, where.line, "vhost.cluster.origin")
    return vhost


def _play(vhost_node, min_latency):
    node = vhost_node.get("play")
    values = schema.section_values(node, schema.PLAY)
    if min_latency and (node is None or node.get("mw_msgs") is None):
        values["mw_msgs"] = 0       # SRS: realtime mode sends each message at once
    return Play(**values)


def _hls(node):
    values = schema.section_values(node, schema.HLS)
    for name in ("hls_key_file_path", "hls_key_url"):
        if values[name] is None:
            values[name] = values["hls_path"]
    return Hls(**values)


def _security(node):
    values = schema.section_values(node, schema.SECURITY)
    rules = []
    for child in node.children if node else ():
        if child.name in ("allow", "deny"):
            spec = schema.SECURITY.children[child.name]
            rules.append((child.name, *spec.convert(child.args)))
    return Security(rules=rules, **values)


def _exec(node):
    values = schema.section_values(node, schema.EXEC)
    return Exec(publish=[list(child.args) for child in node.get_all("publish")] if node else [],
                **values)


def _ffmpeg_words(node):
    """`name value;` pairs of an open block as ffmpeg words: -name value (SRS prefixes '-')."""
    out = []
    for child in node.children if node else ():
        out.append(child.name if child.name.startswith("-") else "-" + child.name)
        out.extend(child.args[:1])
    return out


def _engine(node, path):
    """An engine of a transcode (path vhost.transcode: enabled needs output, vcodec, acodec) or
    of an ingest (vhost.ingest: always needs output; disabled or codec-less means copy, SRS)."""
    values = schema.section_values(node, schema.ENGINE)
    lists = {name: _ffmpeg_words(node.get(name)) for name in ("vfilter", "vparams", "aparams",
                                                             "perfile")}
    engine = Engine(name=node.arg0 or "", where=f"{node.file}:{node.line}", **values, **lists)
    is_ingest = path == "vhost.ingest"
    if engine.enabled or is_ingest:
        missing = ["output"] if not engine.output else []
        if not is_ingest:
            missing += [name for name in ("vcodec", "acodec") if not getattr(engine, name)]
        if missing:
            what = f"engine {engine.name}" if engine.name else "engine"
            raise ConfigError(f"{path}.{what}: no {' and no '.join(missing)}", node.file,
                              node.line, f"{path}.engine.{missing[0]}")
        if engine.vcodec == "vn" and engine.acodec == "an":
            raise ConfigError(f"{path}.engine: vcodec vn and acodec an leave nothing to encode",
                              node.file, node.line, f"{path}.engine.vcodec")
    return engine


def _transcode(node):
    values = schema.section_values(node, schema.TRANSCODE)
    return Transcode(scope=node.arg0 or "", engines=[_engine(e, "vhost.transcode") for e in
                                                     node.get_all("engine")], **values)


def _ingest(node):
    values = schema.section_values(node, schema.INGEST)
    inp = schema.section_values(node.get("input"), schema.INGEST.children["input"])
    ingest = Ingest(name=node.arg0 or "", input_type=inp["type"], input_url=inp["url"],
                    engines=[_engine(e, "vhost.ingest") for e in node.get_all("engine")], **values)
    what = f"ingest {ingest.name}" if ingest.name else "ingest"
    if ingest.enabled and not ingest.input_url:
        raise ConfigError(f"{what}: enabled but no input.url", node.file, node.line,
                          "vhost.ingest.input.url")
    if ingest.enabled and not ingest.engines:
        raise ConfigError(f"{what}: enabled but no engine (the output)", node.file, node.line,
                          "vhost.ingest.engine")
    return ingest


def _shared_hls_warnings(vhosts):
    """Origin vhosts whose HLS file names have no [vhost] and share an hls_path write the same
    playlist for the same app/stream, and each one's security rules guard the other's files."""
    writers = [v for v in vhosts if v.enabled and v.hls.enabled and not v.is_edge]
    warnings = []
    for i, a in enumerate(writers):
        for b in writers[i + 1:]:
            if a.hls.hls_path == b.hls.hls_path and a.hls.hls_m3u8_file == b.hls.hls_m3u8_file \
                    and "[vhost]" not in a.hls.hls_m3u8_file:
                node = b.directive
                warnings.append(f"vhosts {a.name} and {b.name} write HLS to the same files "
                                f"({a.hls.hls_path}/{a.hls.hls_m3u8_file}): put [vhost] in "
                                f"hls_m3u8_file and hls_ts_file (in {node.file}:{node.line})")
    return warnings


def _vhost_warnings(vhost):
    if not vhost.is_edge:
        return []
    node = vhost.directive
    busy = [name for name, on in (("hls", vhost.hls.enabled), ("dvr", vhost.dvr.enabled),
                                  ("transcode", any(t.enabled for t in vhost.transcode)))
            if on]
    if not busy:
        return []
    return [f"vhost {vhost.name}: edge does not do {'/'.join(busy)}; "
            f"the HLS edge is the nginx tier (in {node.file}:{node.line})"]
