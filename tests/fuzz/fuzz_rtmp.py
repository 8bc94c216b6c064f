"""Coverage-guided fuzzing of the sans-IO parsers with atheris (libFuzzer). Not run by pytest
(the file name does not match test_*.py); tests/test_fuzz.py is the bounded hypothesis version
that runs in the suite, and this harness drives the same targets for as long as you like.

Setup, once (atheris has a cp311 manylinux wheel):
    .venv/bin/pip install atheris
Seed corpus from a real capture (ffmpeg <-> our server), written by the test's fixture:
    SRSEDGE_FUZZ_CORPUS=/tmp/corpus .venv/bin/python -m pytest -q tests/test_fuzz.py -k capture
Run one target (server, client, chunk, amf, config, url), libFuzzer options before the corpus:
    .venv/bin/python tests/fuzz/fuzz_rtmp.py server -max_total_time=600 /tmp/corpus/server
    .venv/bin/python tests/fuzz/fuzz_rtmp.py url -max_total_time=60 /tmp/corpus/url
Inputs: `server`/`client` take pieces framed as [u16 length][bytes] (tests/test_fuzz.py frame()),
so where the reads end is fuzzed too; `config`/`url` take UTF-8 text (url: "tcUrl\\nstream").
A crash (any exception but ProtocolError, or ConfigError for config) is saved as crash-<sha1>;
replay it with the same command and that file instead of the corpus, fix the module, and pin the
input as a unit test at the end of tests/test_fuzz.py.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import atheris  # noqa: E402

with atheris.instrument_imports(include=["lib"]):
    import lib.config  # noqa: E402,F401
    import lib.media.flv  # noqa: E402,F401
    import lib.rtmp.session  # noqa: E402,F401
    import lib.rtmp.url  # noqa: E402,F401

from lib.config import ConfigError  # noqa: E402
from lib.rtmp.chunk import Message  # noqa: E402
from lib.rtmp.errors import ProtocolError  # noqa: E402
from lib.rtmp.message import (  # noqa: E402
    MSG_AMF0_COMMAND, MSG_AMF0_DATA, MSG_AMF3_COMMAND, MSG_AMF3_DATA,
)
from tests.test_fuzz import (  # noqa: E402
    decode_amf, discover_url, drive_client, drive_server, parse_config, parse_message,
    read_chunks, unframe,
)


def _server(blob):
    data, cuts = unframe(blob)
    drive_server(data, cuts)


def _client(blob):
    data, cuts = unframe(blob)
    for intent in (("play", "feed"), ("publish", "short")):
        try:
            drive_client(data, intent, cuts)
        except ProtocolError:
            pass


def _amf(blob):
    try:
        decode_amf(blob)
    except ProtocolError:
        pass
    for type_id in (MSG_AMF0_COMMAND, MSG_AMF3_COMMAND, MSG_AMF0_DATA, MSG_AMF3_DATA):
        try:
            parse_message(Message(3, type_id, 0, 0, blob))
        except ProtocolError:
            pass


def _config(blob):
    parse_config(blob.decode("utf-8", "replace"))


def _url(blob):
    tc_url, _, stream = blob.decode("utf-8", "replace").partition("\n")
    discover_url(tc_url, stream)


TARGETS = {
    "server": (_server, ProtocolError),
    "client": (_client, ProtocolError),
    "chunk": (read_chunks, ProtocolError),
    "amf": (_amf, ProtocolError),
    "config": (_config, ConfigError),
    "url": (_url, ProtocolError),
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer args] [corpus dirs]")
    target, allowed = TARGETS[sys.argv[1]]

    def one_input(blob):
        try:
            target(blob)
        except allowed:
            pass

    atheris.Setup([sys.argv[0]] + sys.argv[2:], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
