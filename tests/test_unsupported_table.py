"""schema.UNSUPPORTED and what srsedge implements cannot disagree (issue 23 point 3).

`hls_use_fmp4` was implemented (lib/media/hls.py reads it) yet stayed in the table, so `-t`,
the start log and docs/config.md said "not supported, ignored". Here:
- every entry of the table names a directive of the schema;
- no directive of the table is read by the server: its field name is not read as an attribute
  (`.name`, `getattr(x, "name")`) anywhere in lib/ outside lib/config, nor in srsedge.py.
  Implementing one therefore fails this test until its line leaves the table;
- a config that turns on what srsedge implements is not reported at `-t`.
"""
import os
import re

from lib.config import parse_text, schema

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Names the server reads for something else than the directive, with what that is.
SAME_NAME_OTHER_MEANING = {
    "server_id": "the process's own random id (server.server_id), not the directive",
}


def spec_at(path):
    spec = schema.ROOT
    for part in path.split("."):
        if not isinstance(spec, schema.Block) or spec.children is None:
            return None
        spec = spec.children.get(part)
    return spec


def server_sources():
    paths = [os.path.join(REPO, "srsedge.py")]
    for top, dirs, files in os.walk(os.path.join(REPO, "lib")):
        dirs[:] = [d for d in dirs if d not in ("config", "__pycache__")]
        paths += [os.path.join(top, f) for f in files if f.endswith(".py")]
    for path in paths:
        with open(path, encoding="utf-8") as f:
            yield os.path.relpath(path, REPO), f.read()


def test_every_entry_names_a_schema_directive():
    assert [path for path in schema.UNSUPPORTED if spec_at(path) is None] == []


def test_no_unsupported_directive_is_read_by_the_server():
    sources = list(server_sources())
    read = []
    for path in schema.UNSUPPORTED:
        name = path.rsplit(".", 1)[-1]
        if not isinstance(spec_at(path), schema.Value) or name in SAME_NAME_OTHER_MEANING:
            continue
        pattern = re.compile(rf"\.{name}\b|getattr\([^)]*[\"']{name}[\"']")
        read += [f"{path} read in {file}" for file, text in sources if pattern.search(text)]
    assert read == [], "implemented, yet listed in schema.UNSUPPORTED:\n" + "\n".join(read)


def test_implemented_directives_are_not_reported():
    conf = parse_text("vhost v { min_latency on; hls { enabled on; hls_use_fmp4 on; } }", "t.conf")
    assert conf.unsupported == []
