"""Typed, validated view of a config: Config, and the sections built from its tree.

Rules:
- load_config(path) / parse_text(text) parse (parser.py), apply SRS's legacy transform, check
  every directive against the tables in schema.py, then build the frozen section classes that
  sections.py generates from those tables. Any problem is a ConfigError (`FILE:LINE: message`).
- One generic builder (_section) fills a section from its block: typed values with SRS's
  defaults, sub-sections recursively. Only what a directive alone does not give is written
  here: labels, the mw_msgs rule of min_latency (Play), key paths defaulting to hls_path (Hls),
  security rules, exec commands, engines and their checks (Transcode, Ingest), the HTTP(S)
  default port of an origin without one when the edge pulls over flv|flvs (Cluster).
- Endpoints are (host, port) tuples. host "" means all interfaces.
- Config.root and Vhost.directive keep the raw tree, so reload code can diff
  (Directive.equals) what changed.
- Config.vhost(name): the vhost called `name`, else `__defaultVhost__`, else None; a vhost with
  `enabled off` gives None (without falling back, as in SRS).
"""

import dataclasses

from . import schema
from .errors import ConfigError
from .parser import parse_file, parse_string
# The section classes, also named from here (view.Hls...) by callers and tests.
from .sections import (FFMPEG_WORD_BLOCKS, Cluster, Dvr, Engine, Exec, Forward, Hls,  # noqa: F401
                       ApiHttps, ServerHttps, HttpApi, HttpAuth, HttpHooks, HttpRemux, HttpServer, HttpStatic, Ingest,
                       Play, Publish, RawApi, Refer, Security, Transcode, Vhost)

from lib.names import DEFAULT_VHOST  # noqa: E402


# Config attribute -> top-level directive, where the names differ.
_ROOT_NAMES = {
    "log_tank": "srs_log_tank",
    "log_level": "srs_log_level",
    "log_file": "srs_log_file",
}
_ROOT_ATTRS = ("listen", "pid", "log_tank", "log_level", "log_file", "max_connections",
               "chunk_size", "daemon", "workers", "ff_log_dir", "utc_time", "work_dir",
               "pithy_print_ms", "grace_start_wait", "grace_final_wait", "force_grace_quit",
               "max_processes")


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
        self.http_api = _section(HttpApi, root.get("http_api"))
        self.http_server = _section(HttpServer, root.get("http_server"))
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
    warnings = schema.validate(root)
    config = Config(root, path)
    config.warnings[:0] = warnings
    return config


def _section(cls, node, **given):
    """A `cls` section (sections.py) from its block's node (None: every default): plain values
    typed by the schema, sub-sections built the same way or by their builder in _BUILDERS;
    `given` fields as passed (labels, hand-declared fields, values a builder decides)."""
    values = {name: value for name, value in schema.section_values(node, cls.block).items()
              if name not in given}
    for name, (sub, repeat) in cls.sub_sections.items():
        if name in given:
            continue
        build = _BUILDERS.get(sub) or (lambda n, sub=sub: _section(sub, n))
        if repeat:
            values[name] = [build(n) for n in node.get_all(name)] if node else []
        else:
            values[name] = build(node.get(name) if node else None)
    return cls(**values, **given)


def _vhost(node, global_chunk_size):
    values = schema.section_values(node, schema.VHOST)
    chunk_size = global_chunk_size if values["chunk_size"] is None else values["chunk_size"]
    vhost = _section(Vhost, node, name=node.arg0, directive=node, chunk_size=chunk_size,
                     play=_play(node.get("play"), values["min_latency"]))
    if vhost.is_edge and not vhost.cluster.origin and not vhost.cluster.directory:
        where = node.get("cluster").get("mode")
        raise ConfigError(f"vhost {vhost.name}: cluster.mode remote needs cluster.origin (or cluster.directory)",
                          where.file, where.line, "vhost.cluster.origin")
    return vhost


def _play(node, min_latency):
    if min_latency and (node is None or node.get("mw_msgs") is None):
        return _section(Play, node, mw_msgs=0)  # SRS: realtime mode sends each message at once
    return _section(Play, node)


def _hls(node):
    hls_path = schema.section_values(node, schema.HLS)["hls_path"]
    return _section(Hls, node, **{name: hls_path for name in ("hls_key_file_path", "hls_key_url")
                                  if node is None or node.get(name) is None})


def _security(node):
    rules = []
    for child in node.children if node else ():
        if child.name in ("allow", "deny"):
            spec = schema.SECURITY.children[child.name]
            rules.append((child.name, *spec.convert(child.args)))
    return _section(Security, node, rules=rules)


def _exec(node):
    return _section(Exec, node,
                    publish=[list(child.args) for child in node.get_all("publish")] if node else [])


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
    engine = _section(Engine, node, name=node.arg0 or "", where=f"{node.file}:{node.line}",
                      **{name: _ffmpeg_words(node.get(name)) for name in FFMPEG_WORD_BLOCKS})
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
    return _section(Transcode, node, scope=node.arg0 or "",
                    engines=[_engine(e, "vhost.transcode") for e in node.get_all("engine")])


def _ingest(node):
    inp = schema.section_values(node.get("input"), schema.INGEST.children["input"])
    ingest = _section(Ingest, node, name=node.arg0 or "", input_type=inp["type"],
                      input_url=inp["url"],
                      engines=[_engine(e, "vhost.ingest") for e in node.get_all("engine")])
    what = f"ingest {ingest.name}" if ingest.name else "ingest"
    if ingest.enabled and not ingest.input_url:
        raise ConfigError(f"{what}: enabled but no input.url", node.file, node.line,
                          "vhost.ingest.input.url")
    if ingest.enabled and not ingest.engines:
        raise ConfigError(f"{what}: enabled but no engine (the output)", node.file, node.line,
                          "vhost.ingest.engine")
    return ingest


# SRS's SrsEdgeFlvUpstream: an origin without a port is the HTTP(S) default one
_FLV_DEFAULT_PORTS = {"flv": 80, "flvs": 443}


def _cluster(node):
    cluster = _section(Cluster, node)
    port = _FLV_DEFAULT_PORTS.get(cluster.protocol)
    words = node.get("origin").args if port and node and node.get("origin") else ()
    if not any(":" not in word for word in words):
        return cluster
    return dataclasses.replace(cluster, origin=[(host, port) if ":" not in word else (host, p)
                                                for word, (host, p) in zip(words, cluster.origin)])


# Sections whose fields are not only their block's values.
_BUILDERS = {Cluster: _cluster, Hls: _hls, Security: _security, Exec: _exec, Transcode: _transcode,
             Ingest: _ingest}


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
