"""Transcode, exec and ingest black-box: a real server runs real ffmpeg/commands; players and the
HTTP API check what they produce."""
import json
import os
import signal
import subprocess
import urllib.request

import pytest

from tests.conftest import free_port, need_tool, wait_for, wait_port
from tests.rtmpclient import RtmpTestClient

TRANSCODE_CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen API; }
vhost __defaultVhost__ {
    transcode live {
        enabled on;
        ffmpeg ffmpeg;
        engine sd {
            enabled on;
            vcodec libx264;
            vbitrate 100;
            vwidth 160;
            vheight 120;
            vthreads 1;
            vprofile baseline;
            vpreset ultrafast;
            vparams { g 25; }
            acodec copy;
            output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine];
        }
    }
}
"""


def api_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode() if path == "/metrics" else json.load(r)


def procs(port, kind=None):
    return [p for p in api_get(port, "/api/v1/processes")["processes"]
            if kind is None or p["kind"] == kind]


def video_size(url):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-rw_timeout", "10000000", "-select_streams", "v",
         "-show_entries", "stream=width,height", "-of", "csv=p=0", url],
        capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:            # a zombie is dead
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def transcoding(server_factory, publisher_factory, media_file):
    need_tool("ffprobe")
    api = free_port()
    srv = server_factory(TRANSCODE_CONF.replace("API", str(api)))
    wait_port(api)
    pub = publisher_factory(srv.url("live/cam"), media_file)
    running = wait_for(lambda: [p for p in procs(api, "transcode") if p["pid"]], timeout=20)
    assert running, procs(api)
    return srv, api, pub, running[0]


def test_transcode_engine_publishes_a_smaller_stream(transcoding, player_factory):
    srv, api, pub, proc = transcoding
    assert proc["name"] == "__defaultVhost__/live/cam/sd" and proc["engine"] == "sd"
    assert proc["output_key"] == "__defaultVhost__/live/cam_sd"
    # ffmpeg's stderr is logged with the publisher's context id (and kept for the API)
    publisher = {s["name"]: s for s in api_get(api, "/api/v1/streams")["streams"]}["cam"]
    assert proc["cid"] == publisher["publish"]["cid"]
    assert wait_for(lambda: procs(api, "transcode")[0]["last_output"], timeout=20)
    assert wait_for(
        lambda: f"[{proc['cid']}] transcode __defaultVhost__/live/cam/sd: " in srv.log_text(), 15)
    out_url = srv.url("live/cam_sd")
    assert wait_for(lambda: video_size(out_url) == "160,120", timeout=30)
    player = player_factory(out_url, 2).wait(timeout=60)
    assert player.frames > 10 and player.has_video and player.has_audio
    # cam_sd is a normal stream, and the output of an engine is not transcoded again
    streams = {s["name"]: s for s in api_get(api, "/api/v1/streams")["streams"]}
    assert streams["cam_sd"]["publish"]["active"] and streams["cam_sd"]["video"]["width"] == 160
    assert len(procs(api, "transcode")) == 1
    pub.stop()
    assert wait_for(lambda: not procs(api), timeout=20), procs(api)
    assert wait_for(lambda: not pid_alive(proc["pid"]), timeout=10)


def test_killed_ffmpeg_comes_back(transcoding):
    srv, api, pub, proc = transcoding
    os.kill(proc["pid"], signal.SIGKILL)

    def restarted():
        now = procs(api, "transcode")
        return now[0] if now and now[0]["restarts"] >= 1 and now[0]["pid"] and \
            now[0]["pid"] != proc["pid"] else None
    again = wait_for(restarted, timeout=30)
    assert again, procs(api)
    assert again["exit_code"] == -signal.SIGKILL and again["state"] == "running"
    assert wait_for(lambda: video_size(srv.url("live/cam_sd")) == "160,120", timeout=30)
    metrics = api_get(api, "/metrics")
    assert 'srsedge_process_restarts_total{kind="transcode"} 1.0' in metrics
    assert 'srsedge_processes{kind="transcode",state="running"} 1.0' in metrics


EXEC_CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen API; }
vhost __defaultVhost__ {
    exec {
        enabled on;
        publish /bin/sh {dir}/exec.sh [vhost] [app] [stream] [port] [url];
    }
}
"""


def test_exec_runs_per_publish_and_stops_at_unpublish(server_factory, publisher_factory,
                                                      media_file, tmp_path):
    api = free_port()
    srv = server_factory(EXEC_CONF.replace("API", str(api)), start=False)
    (srv.dir / "exec.sh").write_text(f'sleep 300 &\necho $! > {srv.dir}/child.pid\n'
                                     f'echo "$@" > {srv.dir}/args.txt\nwait\n')
    srv.start()
    wait_port(api)
    pub = publisher_factory(srv.url("live/ex"), media_file)
    args = srv.dir / "args.txt"
    assert wait_for(lambda: args.exists() and args.read_text().strip(), timeout=20)
    assert args.read_text().split() == ["__defaultVhost__", "live", "ex", str(srv.port),
                                        f"rtmp://127.0.0.1:{srv.port}/live/ex"]
    (proc,) = wait_for(lambda: [p for p in procs(api, "exec") if p["pid"]], timeout=10)
    assert proc["state"] == "running" and pid_alive(proc["pid"])
    child = int((srv.dir / "child.pid").read_text())
    assert pid_alive(child)
    pub.stop()
    assert wait_for(lambda: not procs(api), timeout=20)
    assert wait_for(lambda: not pid_alive(proc["pid"]), timeout=10)
    assert wait_for(lambda: not pid_alive(child), timeout=10)     # what it started stops too


INGEST_CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen API; }
vhost __defaultVhost__ {
    ingest cam {
        enabled on;
        input { type file; url MEDIA; }
        ffmpeg ffmpeg;
        engine { enabled off; output rtmp://127.0.0.1:[port]/live?vhost=[vhost]/ingested; }
    }
}
"""


def test_ingest_publishes_a_local_file_and_restarts(server_factory, media_file):
    need_tool("ffprobe")
    api = free_port()
    srv = server_factory(INGEST_CONF.replace("API", str(api)).replace("MEDIA", str(media_file)))
    wait_port(api)
    (proc,) = wait_for(lambda: [p for p in procs(api, "ingest") if p["pid"]], timeout=20)
    assert proc["name"] == "__defaultVhost__/cam"
    # ?vhost=__defaultVhost__ is dropped from the output, as SRS
    assert proc["argv"][-1] == f"rtmp://127.0.0.1:{srv.port}/live/ingested"

    def publishing():
        streams = api_get(api, "/api/v1/streams")["streams"]
        return any(s["name"] == "ingested" and s["publish"]["active"] for s in streams)
    assert wait_for(publishing, timeout=20)
    assert video_size(srv.url("live/ingested")) == "320,240"
    os.kill(proc["pid"], signal.SIGKILL)
    again = wait_for(lambda: [p for p in procs(api, "ingest")
                              if p["restarts"] >= 1 and p["pid"] and p["pid"] != proc["pid"]],
                     timeout=30)
    assert again, procs(api)
    assert wait_for(publishing, timeout=20)


def test_reload_adds_and_removes_an_ingest(server_factory, media_file):
    api = free_port()
    with_ingest = INGEST_CONF.replace("API", str(api)).replace("MEDIA", str(media_file))
    on, off = "ingest cam {\n        enabled on;", "ingest cam {\n        enabled off;"
    assert on in with_ingest
    srv = server_factory(with_ingest.replace(on, off))
    wait_port(api)
    assert procs(api) == []
    srv.conf.write_text(srv.conf.read_text().replace(off, on))
    srv.send_signal(signal.SIGHUP)
    (proc,) = wait_for(lambda: [p for p in procs(api, "ingest") if p["pid"]], timeout=20)
    srv.conf.write_text(srv.conf.read_text().replace(on, off))
    srv.send_signal(signal.SIGHUP)
    assert wait_for(lambda: not procs(api), timeout=20)
    assert wait_for(lambda: not pid_alive(proc["pid"]), timeout=10)


SECRET = "S3cr3tT0k3n"
TOKENS_CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen API; }
vhost __defaultVhost__ {
    exec {
        enabled on;
        publish /bin/sh {dir}/say.sh [url] [param];
    }
    transcode live {
        enabled on;
        ffmpeg ffmpeg;
        engine sd {
            enabled on;
            vcodec copy;
            acodec copy;
            output rtmp://127.0.0.1:[port]/[app]/[stream]_sd[param];
        }
    }
}
"""


def test_tokens_never_in_clear_in_processes_api_and_log(server_factory, publisher_factory,
                                                        media_file):
    """Issue 20 point 2: the publisher's `?token=` reaches the transcoder's output URL ([param])
    and exec's [url]/[param]; a player puts tokens in its tcUrl and pageUrl. The API's process
    fields (output, argv, last_output), the client and stream lists and every log line (stderr
    of both children too) show them redacted."""
    api = free_port()
    srv = server_factory(TOKENS_CONF.replace("API", str(api)), start=False)
    (srv.dir / "say.sh").write_text('echo "exec says $1 $2" >&2\nexec sleep 300\n')
    srv.start()
    wait_port(api)
    publisher_factory(srv.url(f"live/cam?token={SECRET}"), media_file)

    def said(kind, words):
        return [p for p in procs(api, kind) if any(words in line for line in p["last_output"])]
    assert wait_for(lambda: said("exec", "exec says"), timeout=20), procs(api)
    assert wait_for(lambda: any(s["name"] == "cam_sd" and s["publish"]["active"]
                                for s in api_get(api, "/api/v1/streams")["streams"]), 20)
    player = RtmpTestClient(srv.url(f"live?auth_key={SECRET}/cam"),
                            connect_extra={"pageUrl": f"http://page.test/?sign={SECRET}"})
    assert player.play()
    clients = api_get(api, "/api/v1/clients")["clients"]
    assert f"rtmp://127.0.0.1:{srv.port}/live?auth_key=***" in [c["tcUrl"] for c in clients]
    (transcoder,) = procs(api, "transcode")
    assert transcoder["output"] == f"rtmp://127.0.0.1:{srv.port}/live/cam_sd?token=***"
    assert transcoder["argv"][-1] == transcoder["output"]
    shown = json.dumps([api_get(api, f"/api/v1/{what}")
                        for what in ("processes", "clients", "streams")])
    assert SECRET not in shown, shown
    assert "token=***" in " ".join(said("exec", "exec says")[0]["last_output"])
    # ffmpeg names its output on stderr (the API keeps only the last lines): logged redacted
    assert wait_for(lambda: "Output #0, flv, to 'rtmp://" in srv.log_text(), timeout=10)
    assert SECRET not in srv.log_text(), srv.log_text()
    assert f"to 'rtmp://127.0.0.1:{srv.port}/live/cam_sd?token=***'" in srv.log_text()
    player.close()


NESTED_CONF = """
listen {port};
srs_log_tank console;
http_api { enabled on; listen API; }
vhost __defaultVhost__ {
    exec {
        enabled on;
        publish /bin/sh {dir}/rec.sh -o {dir}/rec/[app]/[stream].txt [pageUrl];
        publish /bin/sh {dir}/rec.sh [stream];
    }
}
"""


def test_exec_variables_expand_once_and_a_name_never_becomes_an_option(server_factory):
    """Issue 20 point 5 end to end: app `live/[param]` with `?x=/../../../esc` in the tcUrl's
    query stays literal in exec's `-o` path (before: `[param]` was expanded inside the app and
    the path left `rec/`), `[pageUrl]` is the publisher's page (before: always ""), and a stream
    named `-f` never becomes an option of a `[stream]` word (that line is not run)."""
    api = free_port()
    srv = server_factory(NESTED_CONF.replace("API", str(api)), start=False)
    (srv.dir / "rec.sh").write_text('exec sleep 300\n')
    srv.start()
    wait_port(api)
    nested = RtmpTestClient(srv.url("live/[param]?x=/../../../esc/s"),
                            connect_extra={"pageUrl": "http://page.test/p"})
    dashed = RtmpTestClient(srv.url("live/-f"))
    try:
        assert nested.publish() and dashed.publish()
        # each publish starts all its lines at once: 3 or more means both publishes did
        assert wait_for(lambda: len(procs(api, "exec")) >= 3, timeout=20), procs(api)
        runs = [p["argv"][2:] for p in procs(api, "exec")]
        assert sorted(runs) == [
            ["-o", f"{srv.dir}/rec/live/-f.txt", ""],
            ["-o", f"{srv.dir}/rec/live/[param]/s.txt", "http://page.test/p"],
            ["s"]], runs
    finally:
        nested.close()
        dashed.close()
