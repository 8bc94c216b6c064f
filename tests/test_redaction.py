"""Tokens never in clear (issue 20, point 2): one redaction (lib/redact.py) for every log line,
every API field and every stored process output.

Units here (the log sink, free-text lines such as ffmpeg's stderr, the API's answer tree); the
black-box test with a real transcoder and exec is tests/test_transcode.py
`test_tokens_never_in_clear_in_processes_api_and_log`."""
import pytest

from lib.redact import redact, redact_tree
from lib.server.process.log import Logger

SECRET = "S3cr3tT0k3n"


@pytest.mark.parametrize("text,shown", [
    # ffmpeg stderr: the value ends at whitespace or a quote, so the reason stays readable
    (f"rtmp://127.0.0.1:1935/live/s?token={SECRET}: Input/output error",
     "rtmp://127.0.0.1:1935/live/s?token=*** Input/output error"),
    (f"Output #0, flv, to 'rtmp://h/live/s_sd?token={SECRET}&x=1':",
     "Output #0, flv, to 'rtmp://h/live/s_sd?token=***&x=1':"),
    (f'url "rtmp://h/live/s?auth_key={SECRET}" refused',
     'url "rtmp://h/live/s?auth_key=***" refused'),
    # an exec command line as logged (words joined)
    (f"/bin/sh run.sh ?token={SECRET} rtmp://127.0.0.1:1935/live/s?token={SECRET}",
     "/bin/sh run.sh ?token=*** rtmp://127.0.0.1:1935/live/s?token=***"),
    (f"bad answer: token={SECRET} refused", "bad answer: token=*** refused"),
    ("frame=  100 fps= 25 q=-1.0 size=    512kB", "frame=  100 fps= 25 q=-1.0 size=    512kB"),
])
def test_redact_free_text_keeps_the_rest_of_the_line(text, shown):
    assert redact(text) == shown


def test_every_log_line_is_redacted_at_the_sink(tmp_path):
    path = tmp_path / "srs.log"
    logger = Logger("file", "trace", str(path))
    log = logger.context("cid12345")
    log.trace(f"exec x: rtmp://127.0.0.1:1935/live/s?token={SECRET}: Connection refused")
    log.warn(f"hook body {{'param': '?txSecret={SECRET}'}}")
    log.error(f"edge pull rtmp://u:{SECRET}@origin/live")
    text = path.read_text()
    assert SECRET not in text, text
    assert text.count("***") == 3 and "Connection refused" in text


def test_api_answer_tree_is_redacted_everywhere():
    answer = {"code": 0, "processes": [{
        "output": f"rtmp://127.0.0.1:1935/live/s_sd?token={SECRET}",
        "argv": ["ffmpeg", "-i", "x", f"rtmp://h/live/s?sign={SECRET}"],
        "last_output": [f"Output #0, flv, to 'rtmp://h/live/s?token={SECRET}':"],
        "pid": 12, "uptime": 1.5, "edge": None, "ok": True}]}
    shown = redact_tree(answer)
    assert SECRET not in repr(shown)
    proc = shown["processes"][0]
    assert proc["output"] == "rtmp://127.0.0.1:1935/live/s_sd?token=***"
    assert proc["argv"][:3] == ["ffmpeg", "-i", "x"]
    assert proc["pid"] == 12 and proc["uptime"] == 1.5 and proc["edge"] is None
    assert SECRET in answer["processes"][0]["output"]       # the live objects keep the value
