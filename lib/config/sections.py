"""The typed config sections, generated from the schema blocks: each section is declared once.

Rules:
- section_class(name, block, extra_fields) makes a frozen dataclass whose fields are, in the
  block's order: one per plain (non-repeat) Value, typed by its Kind (schema.Value.py_type), and
  one per sub-block that already has a section class (a list of them when the block repeats).
  Field names are the directive names (`vhost.hls.hls_fragment`).
- Only what no single directive gives is declared by hand, in `extra_fields`, after the
  generated ones: a block's label (`computed`), the raw tree or a location (`computed`), and
  fields made from other directives (`covers`: Security.rules from allow/deny, Ingest.input_url
  from input.url). A sub-block covered by a hand-declared field is not generated again.
- Every class keeps its `block` and `sub_sections` ({field: (class, repeat)}) for the builders
  in view.py and for the test that checks no directive is left without a field
  (tests/test_config.py::test_every_directive_has_a_field).
"""

from dataclasses import field, make_dataclass

from . import schema

_CLASS_OF_BLOCK = {}        # id(schema block) -> its section class


def covers(*directives, **field_args):
    """A hand-declared field made from these directives (dotted paths below the block)."""
    return field(metadata={"covers": directives}, **field_args)


def computed(why, **field_args):
    """A hand-declared field that no directive of the block gives (label, raw tree...)."""
    return field(metadata={"computed": why}, **field_args)


def section_class(name, block, extra_fields=(), namespace=None, doc=None):
    """A frozen dataclass for `block`: generated fields, then `extra_fields` ((name, type,
    field) tuples, as for dataclasses.make_dataclass)."""
    hand = {extra[0] for extra in extra_fields}
    hand.update(path.split(".")[0] for extra in extra_fields if len(extra) == 3
                for path in extra[2].metadata.get("covers", ()))
    fields, sub_sections = [], {}
    for directive, spec in block.children.items():
        if directive in hand:
            continue
        if isinstance(spec, schema.Value) and not spec.repeat:
            fields.append((directive, spec.py_type))
        elif isinstance(spec, schema.Block) and id(spec) in _CLASS_OF_BLOCK:
            sub = _CLASS_OF_BLOCK[id(spec)]
            sub_sections[directive] = (sub, spec.repeat)
            fields.append((directive, list if spec.repeat else sub))
    cls = make_dataclass(name, fields + list(extra_fields), frozen=True,
                         namespace={"block": block, "sub_sections": sub_sections,
                                    **(namespace or {})})
    cls.__module__ = __name__                   # so it pickles as lib.config.sections.<name>
    cls.__doc__ = doc or f"The {name} section (generated from its schema block)."
    _CLASS_OF_BLOCK[id(block)] = cls
    return cls


# ---------------------------------------------------------------------------------------------
# vhost sections. Comments on the directives (units, meanings) are in schema.py.

Play = section_class("Play", schema.PLAY,
                     doc="vhost.play; mw_msgs defaults to 0 with min_latency on (view.py).")
Publish = section_class("Publish", schema.PUBLISH)
HttpHooks = section_class("HttpHooks", schema.HTTP_HOOKS)
Cluster = section_class("Cluster", schema.CLUSTER)
Forward = section_class("Forward", schema.FORWARD)
Hls = section_class("Hls", schema.HLS,
                    doc="vhost.hls; hls_key_file_path and hls_key_url default to hls_path.")
HttpRemux = section_class("HttpRemux", schema.HTTP_REMUX)
HttpStatic = section_class("HttpStatic", schema.HTTP_STATIC)
Security = section_class("Security", schema.SECURITY, [
    ("rules", list, covers("allow", "deny")),   # [(allow|deny, publish|play, all|IP|CIDR)] in order
])
Refer = section_class("Refer", schema.REFER)
Dvr = section_class("Dvr", schema.DVR)
Exec = section_class("Exec", schema.EXEC, [
    ("publish", list, covers("publish")),       # one list of words per `publish ...;`
])

# The engine's open blocks: `name [value];` pairs, typed as ffmpeg words (-name value) in order.
FFMPEG_WORD_BLOCKS = tuple(name for name, spec in schema.ENGINE.children.items()
                           if isinstance(spec, schema.Block) and spec.children is None)

Engine = section_class("Engine", schema.ENGINE, [
    ("name", str, computed("the engine's label (\"\" when anonymous)")),
    *[(name, list, covers(name)) for name in FFMPEG_WORD_BLOCKS],
    ("where", str, computed("FILE:LINE of the engine block", default="", compare=False)),
], doc="One ffmpeg command of a transcode or an ingest.")
Transcode = section_class("Transcode", schema.TRANSCODE, [
    ("scope", str, computed("the label: \"\" (whole vhost), \"app\" or \"app/stream\"")),
    ("engines", list, covers("engine")),        # [Engine]
])
Ingest = section_class("Ingest", schema.INGEST, [
    ("name", str, computed("the ingest's label (\"\" when anonymous)")),
    ("input_type", str, covers("input.type")),  # file | stream
    ("input_url", str, covers("input.url")),
    ("engines", list, covers("engine")),        # [Engine]
])

Vhost = section_class("Vhost", schema.VHOST, [
    ("name", str, computed("the vhost's label")),
    ("directive", object, computed("the raw Directive, for reload diffs", repr=False,
                                   compare=False)),
], namespace={"is_edge": property(lambda self: self.cluster.mode == "remote",
                                  doc="cluster.mode remote")},
    doc="One vhost; chunk_size falls back to the global one.")

# ---------------------------------------------------------------------------------------------
# top-level sections

RawApi = section_class("RawApi", schema.HTTP_API.children["raw_api"])
HttpAuth = section_class("HttpAuth", schema.HTTP_API.children["auth"])
ApiHttps = section_class("ApiHttps", schema.HTTP_API.children["https"],
                         doc="http_api.https (SRS's HTTPS API; a bare port means 127.0.0.1).")
ServerHttps = section_class("ServerHttps", schema.HTTP_SERVER.children["https"],
                            doc="http_server.https (SRS's HTTPS server).")
HttpApi = section_class("HttpApi", schema.HTTP_API,
                        doc="http_api; a bare listen port means 127.0.0.1 (srsedge choice).")
HttpServer = section_class("HttpServer", schema.HTTP_SERVER,
                           doc="http_server; listen host \"\" = all interfaces.")

SECTIONS = (Play, Publish, HttpHooks, Cluster, Forward, Hls, HttpRemux, HttpStatic, Security,
            Refer, Dvr, Exec, Engine, Transcode, Ingest, Vhost, RawApi, HttpAuth, ApiHttps, HttpApi,
            ServerHttps, HttpServer)
