"""Live onMetaData as SRS 7.0.18 serves it (issue 23 point 4).

SRS's SrsMetaCache::update_data (trunk/src/app/srs_app_source.cpp:1672-1730) changes every
onMetaData a publisher (or an edge's origin) sends before caching and forwarding it:
- `duration` is removed ("to make ExoPlayer happy"): a live stream has none. With it, players
  show a seek bar, and rtmpdump stops at the duration and says "Download may be incomplete"
  (exit 2);
- `server` and `server_version` are set (SRS: "SRS/7.0.18(Kai)" and "7.0.18");
- it is re-encoded as `onMetaData` + AMF0 object (`@setDataFrame` dropped, an ECMA array
  becomes an object).
"""
import subprocess

from lib.names import SERVER_NAME, VERSION
from lib.rtmp import amf0
from lib.rtmp.session import MSG_AMF0_DATA, metadata_payload
from tests.conftest import free_port, need_tool, wait_for, wait_port
from tests.test_parity import api_streams


def test_live_metadata_has_no_duration_and_names_the_server():
    sent = amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray(
        duration=15.0, width=320.0, height=240.0, filesize=0.0, encoder="Lavf61"))
    name, meta = amf0.decode_all(metadata_payload(MSG_AMF0_DATA, sent))
    assert name == "onMetaData" and type(meta) is dict          # an object, as SRS writes it
    assert meta == {"width": 320.0, "height": 240.0, "filesize": 0.0, "encoder": "Lavf61",
                    "server": SERVER_NAME, "server_version": VERSION}


def test_rtmpdump_of_a_15s_publish_completes(server_factory, media_file, publisher_factory,
                                             tmp_path):
    """ffmpeg -t 15 writes onMetaData duration 15. SRS 7.0.18: `rtmpdump -B 3` of it exits 0
    (download complete); srsedge passed duration through and rtmpdump exited 2."""
    need_tool("rtmpdump")
    api = free_port()
    srv = server_factory(f"listen {{port}};\nsrs_log_tank console;\nhttp_api {{ enabled on; "
                         f"listen {api}; }}\nvhost __defaultVhost__ {{ }}\n")
    publisher_factory(srv.url("live/s"), media_file, extra=("-t", "15"))
    wait_port(api)
    assert wait_for(lambda: any(s["name"] == "s" and s["video"] for s in api_streams(api)), 15)
    out = tmp_path / "out.flv"
    run = subprocess.run(["rtmpdump", "-r", f"rtmp://127.0.0.1:{srv.port}/live/s", "-B", "3",
                          "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Download complete" in run.stderr
    assert "duration" not in run.stderr.split("Metadata:")[-1].split("\n\n")[0]
