"""Sans-IO parts of transcode/exec/ingest: the child process state machine (fake clock), ffmpeg
command lines as SRS builds them, and the config checks `-t` runs."""
import subprocess
import sys
from pathlib import Path

import pytest

from lib.cluster.actions import Stop
from lib.cluster.child import ChildMachine, Kill, Spawn, Terminate
from lib.cluster.child_cap import LOG_EVERY, ChildCap
from lib.config import ConfigError, load_config, parse_text
from lib.media.variables import UnsafeExpansion, expand, expand_word
from lib.rtmp.url import Request
from lib.server.ffmpeg.command import copy_argv, engine_argv, expand_all, local_url

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------ child machine
def _machine(**kw):
    return ChildMachine(0.0, **{"base": 1, "cap": 8, "stable": 10, "kill_after": 3, **kw})


def _up(m, now=0.0):
    """idle -> spawning -> running."""
    m.start(now)
    assert m.take_actions() == [Spawn(restart=False)] and m.state == "spawning"
    m.spawned(now)
    assert m.take_actions() == [] and m.state == "running"


def test_child_backoff_doubles_and_is_capped():
    m = _machine()
    _up(m)
    now, delays = 0.0, []
    for _ in range(6):                         # dies at once, every time
        now += 0.5
        m.exited(1, now)
        assert m.state == "backoff"
        delays.append(m.get_timer() - now)
        m.handle_timer(m.get_timer() - 0.01)   # never early
        assert m.take_actions() == []
        now = m.get_timer()
        m.handle_timer(now)
        assert m.take_actions() == [Spawn(restart=True)] and m.state == "spawning"
        m.spawned(now)
    assert delays == [1, 2, 4, 8, 8, 8]
    assert m.restarts == 6 and m.state == "running" and m.exit_code == 1


def test_child_long_run_resets_backoff_and_spawn_failure_backs_off():
    m = _machine(cap=30)
    _up(m)
    m.exited(1, 1)
    assert m.get_timer() == 2
    m.handle_timer(2)
    m.spawn_failed("ENOENT", 2)                # could not start: a quick failure too
    assert m.state == "backoff" and m.get_timer() == 4
    m.handle_timer(4)
    m.spawned(4)
    m.exited(0, 100)                           # ran 96 s: back to the base delay
    assert m.get_timer() == 101


STOP_CASES = {
    # state reached -> (actions stop() asks for, state after stop)
    "idle": ([Stop("stopped")], "stopped"),
    "spawning, Spawn not yet taken": ([Stop("stopped before it started")], "stopped"),
    "spawning, Popen in flight": ([], "cancelling"),
    "running": ([Terminate()], "stopping"),
    "backoff": ([Stop("stopped")], "stopped"),
    "cancelling": ([], "cancelling"),
    "stopping": ([], "stopping"),
    "stopped": ([], "stopped"),
    "error": ([], "error"),
}


def _reach(m, case):
    if case.startswith("spawning") or case in ("running", "backoff", "cancelling",
                                                "stopping", "stopped"):
        m.start(0)
        if case != "spawning, Spawn not yet taken":
            m.take_actions()
    if case in ("running", "backoff", "stopping", "stopped"):
        m.spawned(0)
    if case == "backoff":
        m.exited(1, 1)
    if case == "cancelling":
        m.stop(0)
    if case in ("stopping", "stopped"):
        m.stop(0)
        m.take_actions()
    if case == "stopped":
        m.exited(-15, 1)
    if case == "error":
        m.exited(0, 0)                         # not in the table in idle
    if case != "spawning, Spawn not yet taken":
        m.take_actions()
    assert m.state == case.split(",")[0]


@pytest.mark.parametrize("case", list(STOP_CASES))
def test_child_stop_in_every_state(case):
    m = _machine()
    _reach(m, case)
    m.stop(2)
    actions, state = STOP_CASES[case]
    assert m.take_actions() == actions and m.state == state
    m.handle_timer(1000)                       # no respawn after a stop, ever
    assert not any(isinstance(a, Spawn) for a in m.take_actions())


def test_child_stop_during_spawn_terminates_the_child_when_it_appears():
    m = _machine()
    m.start(0)
    m.take_actions()                           # the driver is inside Popen
    m.stop(0.1)
    assert m.take_actions() == [] and m.state == "cancelling"
    m.spawned(0.2)                             # Popen returned: a child exists now
    assert m.take_actions() == [Terminate()] and m.state == "stopping"
    assert m.get_timer() == 3.2
    m.handle_timer(3.2)                        # ignored SIGTERM: SIGKILL, once
    assert m.take_actions() == [Kill()] and m.get_timer() is None
    m.exited(-9, 3.3)
    assert m.take_actions() == [Stop("stopped (exit -9)")] and m.done


def test_child_stop_during_spawn_that_fails_ends_stopped():
    m = _machine()
    m.start(0)
    m.take_actions()
    m.stop(0)
    m.spawn_failed("ENOENT", 0.1)
    assert m.take_actions() == [Stop("stopped (spawn failed: ENOENT)")] and m.done
    assert m.handle_timer(1000) is None and m.take_actions() == []


def test_child_stopping_exit_before_kill_deadline_asks_no_kill():
    m = _machine()
    _up(m)
    m.stop(5)
    assert m.take_actions() == [Terminate()] and m.get_timer() == 8
    m.exited(-15, 6)
    assert m.take_actions() == [Stop("stopped (exit -15)")] and m.done


def test_child_transition_not_in_table_is_an_error_state():
    m = _machine()
    _up(m)
    m.spawned(1)                               # twice
    assert m.state == "error" and m.done
    assert m.error == "child process: spawned not allowed in state running"
    assert m.take_actions() == [Kill(), Stop(m.error)]
    m.start(2)                                 # stays in error, asks nothing more
    assert m.state == "error" and m.take_actions() == []


# ------------------------------------------------------------------------ child cap
def test_cap_global_and_vhost_limits_and_forced_slots():
    cap = ChildCap(3)
    assert cap.admit("a", 1, 0) == (True, None)
    ok, line = cap.admit("a", 1, 0)
    assert not ok and "max_processes 1 (vhost a), 1 running" in line
    assert cap.admit("b", 0, 0) == (True, None)
    assert cap.admit("c", 0, 0, force=True) == (True, None)       # ingest: always, takes a slot
    ok, line = cap.admit("b", 0, 0)
    assert not ok and "max_processes 3 (global), 3 running" in line
    assert cap.describe() == {"count": 3, "max": 3, "refused": 2, "vhosts": {
        "a": {"count": 1, "max": 1, "refused": 1}, "b": {"count": 1, "max": 0, "refused": 1},
        "c": {"count": 1, "max": 0, "refused": 0}}}
    cap.release("b")
    assert cap.admit("b", 0, 1) == (True, None)


def test_cap_logs_once_per_minute_per_cap_with_the_refusals_since():
    cap = ChildCap(1)
    cap.admit("a", 0, 0)
    lines = [cap.admit("a", 0, t / 10)[1] for t in range(500)]       # 50 s of refusals
    assert lines[0] is not None and lines[1:] == [None] * 499
    line = cap.admit("a", 0, LOG_EVERY)[1]
    assert "(500 refused since the last line" in line


# ------------------------------------------------------------------------ ffmpeg commands
ENGINE_CONF = """
listen 1935;
vhost __defaultVhost__ {
    transcode live {
        enabled on;
        ffmpeg /usr/bin/ffmpeg;
        engine sd {
            enabled on;
            vfilter { vf scale=iw/2:-2; }
            vcodec libx264; vbitrate 300; vfps 15; vwidth 161; vheight 91; vthreads 2;
            vprofile baseline; vpreset superfast;
            vparams { t 100; coder 1; }
            acodec aac; abitrate 48; asample_rate 44100; achannels 2;
            aparams { profile:a aac_low; }
            output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine];
        }
        engine copy {
            enabled on; vcodec copy; acodec copy;
            aparams { bsf:a aac_adtstoasc; other x; }
            output rtmp://127.0.0.1:[port]/[app]/[stream]_[engine];
        }
        engine off { enabled off; }
    }
}
"""


def test_engine_argv_like_srs():
    t = parse_text(ENGINE_CONF).vhost("x").transcode[0]
    sd, copy, off = t.engines
    assert not off.enabled
    argv = engine_argv(t.ffmpeg, sd, "rtmp://127.0.0.1:1935/live/s", "OUT")
    assert argv == [
        "/usr/bin/ffmpeg", "-hide_banner", "-nostats", "-f", "flv",
        "-i", "rtmp://127.0.0.1:1935/live/s", "-vf", "scale=iw/2:-2",
        "-vcodec", "libx264", "-b:v", "300000", "-r", "15", "-s", "160x90", "-aspect", "160:90",
        "-threads", "2", "-profile:v", "baseline", "-preset", "superfast", "-t", "100",
        "-coder", "1", "-acodec", "aac", "-b:a", "48000", "-ar", "44100", "-ac", "2",
        "-profile:a", "aac_low", "-f", "flv", "-y", "OUT"]
    argv = engine_argv(t.ffmpeg, copy, "/file.mp4", "OUT")
    assert argv == ["/usr/bin/ffmpeg", "-hide_banner", "-nostats", "-i", "/file.mp4",
                    "-vcodec", "copy", "-acodec", "copy", "-bsf:a", "aac_adtstoasc",
                    "-f", "flv", "-y", "OUT"]        # no -f flv before a non-rtmp input
    argv = copy_argv("ffmpeg", sd, "/f.flv", "OUT", ["-re"])
    assert argv[:6] == ["ffmpeg", "-hide_banner", "-nostats", "-re", "-i", "/f.flv"]
    assert "-vcodec" in argv and argv[argv.index("-vcodec") + 1] == "copy"


def test_output_variables():
    values = {"vhost": "v", "port": 1935, "app": "live", "stream": "s", "param": "?k=1",
              "engine": "sd"}
    out = expand_all("rtmp://h:[port]/[app]?vhost=[vhost]/[stream]_[engine][param]-[2006]",
                     values, 0.0, utc=True)
    assert out == "rtmp://h:1935/live?vhost=v/s_sd?k=1-1970"
    assert local_url(1935, "__defaultVhost__", "live", "s") == "rtmp://127.0.0.1:1935/live/s"
    assert local_url(1935, "v", "live", "s") == "rtmp://127.0.0.1:1935/live?vhost=v/s"


# ------------------------------------------------------------------------ config checks
BAD_CONFIGS = {
    "unknown engine field": ("""listen 1935;
vhost __defaultVhost__ {
    transcode {
        enabled on;
        engine sd {
            enabled on;
            vcodec libx264;
            vbitrat 300;
        }
    }
}
""", 8, "unknown directive vhost.transcode.engine.vbitrat"),
    "missing output": ("""listen 1935;
vhost __defaultVhost__ {
    transcode live {
        enabled on;
        engine sd {
            enabled on;
            vcodec libx264;
            acodec copy;
        }
    }
}
""", 5, "engine sd: no output"),
    "missing codecs": ("""listen 1935;
vhost __defaultVhost__ {
    transcode live {
        enabled on;
        engine { enabled on; output rtmp://127.0.0.1/[app]/[stream]_x; }
    }
}
""", 5, "no vcodec and no acodec"),
    "ingest without url": ("""listen 1935;
vhost __defaultVhost__ {
    ingest cam {
        enabled on;
        input { type file; }
        engine { output rtmp://127.0.0.1/live/cam; }
    }
}
""", 3, "ingest cam: enabled but no input.url"),
    "ingest bad input type": ("""listen 1935;
vhost __defaultVhost__ {
    ingest cam {
        enabled on;
        input { type device; url /dev/video0; }
    }
}
""", 5, "want file|stream"),
    "ingest engine without output": ("""listen 1935;
vhost __defaultVhost__ {
    ingest cam {
        enabled on;
        input { type file; url /x.flv; }
        engine { enabled off; }
    }
}
""", 6, "vhost.ingest.engine: no output"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_fails_dash_t_with_file_line(tmp_path, name):
    text, line, message = BAD_CONFIGS[name]
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    out = subprocess.run([sys.executable, "srsedge.py", "-t", "-c", str(conf)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"{conf}:{line}:" in out.stderr and message in out.stderr, out.stderr


def test_disabled_engine_needs_nothing_and_full_conf_parses():
    parse_text(ENGINE_CONF)
    with pytest.raises(ConfigError):
        parse_text(BAD_CONFIGS["missing output"][0])
    conf = load_config(str(ROOT / "conf" / "full.conf"))
    assert conf.vhost("dvr.srs.com").dvr.enabled
    (t,) = conf.vhost("transcode.srs.com").transcode
    assert t.scope == "live" and [e.name for e in t.engines] == ["sd", "copy"]
    assert conf.vhost("exec.srs.com").exec.publish[0][0] == "ffmpeg"
    (ingest,) = conf.vhost("ingest.srs.com").ingest
    assert ingest.input_type == "file" and ingest.engines[0].output.endswith("/livestream")


# ------------------------------------------------------------------------ edges never do it
class _FakeServer:
    """What the plugins read from a Server, without sockets."""

    def __init__(self, conf):
        from lib.server.process.log import Logger
        self.config = conf
        self.logger = Logger("console", "error", None)
        self.rtmp_ports = [1935]
        self.config_transform = None
        self.server_id, self.service_id = "vid-x", "svc"


class _FakeSource:
    def __init__(self, vhost):
        self.vhost, self.app, self.stream = vhost, "live", "s"
        self.key = f"{vhost}/live/s"
        self.sinks = []
        self.dvr = None
        self.publisher = None


EDGE_CONF = """
listen 1935;
vhost edge.test {
    cluster { mode remote; origin 127.0.0.1:19350; }
    dvr { enabled on; }
    exec { enabled on; publish /bin/true; }
    transcode {
        enabled on;
        engine e { enabled on; vcodec copy; acodec copy; output rtmp://127.0.0.1/x/y; }
    }
    ingest cam { enabled on; input { url /x.flv; } engine { output rtmp://127.0.0.1/live/cam; } }
}
"""


def test_edge_vhost_never_records_transcodes_execs_or_ingests():
    from lib.server.dvr.sink import DvrPlugin
    from lib.server.ffmpeg.plugin import ProcessPlugin
    conf = parse_text(EDGE_CONF)
    assert any("edge does not do dvr/transcode" in w for w in conf.warnings)
    server = _FakeServer(conf)
    source = _FakeSource("edge.test")
    DvrPlugin(server).on_source_created(source)
    assert source.sinks == [] and source.dvr is None
    procs = ProcessPlugin(server)
    procs.on_publish_started(object(), source)
    procs.on_server_start()
    assert server.processes.procs == {} and procs.by_stream == {} and procs.ingests == {}


# ------------------------------------------------------------------------ variables (issue 20.5)
def test_expand_inserts_each_value_once_and_never_expands_it_again():
    values = {"app": "live/[param]", "stream": "[app]", "param": "?x=/../../..", "port": 1935}
    assert expand("/d/[app]/[stream].flv", values) == "/d/live/[param]/[app].flv"
    assert expand("[port]:[unknown]:[[port]]", values) == "1935:[unknown]:[1935]"


@pytest.mark.parametrize("template,values,why", [
    ("/data/[app]/[stream].flv", {"app": "live", "stream": "s/../../../etc/x"}, "'..'"),
    ("/data/[stream][param].flv", {"stream": "s", "param": "?/../../x"}, "'..'"),
    ("/data/[app]/x.flv", {"app": "./live"}, "'.'"),
    ("/data/[stream]/x.flv", {"stream": ".."}, "'..'"),
    ("[stream]", {"stream": "-f"}, "option"),
    ("[stream].flv", {"stream": "-y"}, "option"),
    ("[app][stream]", {"app": "", "stream": "-i"}, "option"),
    ("[pageUrl]", {"pageUrl": "/etc/passwd"}, "absolute"),
])
def test_expanded_word_refused_when_a_value_moves_a_path_or_makes_an_option(template, values,
                                                                            why):
    with pytest.raises(UnsafeExpansion, match=why):
        expand_word(template, values)


def test_what_the_template_itself_says_stays_the_operators():
    assert expand_word("../objs/[stream].flv", {"stream": "s"}) == "../objs/s.flv"
    assert expand_word("-o", {"stream": "s"}) == "-o"
    assert expand_word("/d/[stream]..flv", {"stream": "a..b"}) == "/d/a..b..flv"
    assert expand_word("/d/./[stream]", {"stream": "s.flv"}) == "/d/./s.flv"
    assert expand_word("[tcUrl]", {"tcUrl": "rtmp://h/live"}) == "rtmp://h/live"


PLUGIN_CONF = """
listen 1935;
vhost __defaultVhost__ {
    exec {
        enabled on;
        publish /bin/rec -o /data/[app]/[stream].flv [pageUrl] [swfUrl];
        publish /bin/tool [stream] [tcUrl];
    }
    transcode {
        enabled on;
        engine e {
            enabled on; vcodec copy; acodec copy;
            output rtmp://127.0.0.1:[port]/[app]/[stream]_e;
        }
    }
}
"""


class _FakeConn:
    def __init__(self, app, stream, param="", page_url="", swf_url=""):
        self.cid = "c1"
        self.req = Request(vhost="__defaultVhost__", app=app, stream=stream, param=param,
                           tc_url=f"rtmp://127.0.0.1/{app}")
        self.page_url = page_url
        self.connect_object = {"swfUrl": swf_url, "pageUrl": page_url}


def _published(app, stream, **conn):
    """The argv of every process the plugin would start for this publish."""
    from lib.server.ffmpeg.plugin import ProcessPlugin
    plugin = ProcessPlugin(_FakeServer(parse_text(PLUGIN_CONF)))
    spawned = []
    plugin._spawn = lambda kind, name, argv, log, **info: spawned.append((kind, argv)) or name
    source = _FakeSource("__defaultVhost__")
    source.app, source.stream, source.key = app, stream, f"__defaultVhost__/{app}/{stream}"
    plugin.on_publish_started(_FakeConn(app, stream, **conn), source)
    return spawned


def test_exec_gets_the_publishers_page_and_swf_urls():
    spawned = _published("live", "s", param="?token=t", page_url="http://page.test/p?x=1",
                         swf_url="http://page.test/player.swf")
    assert ("exec", ["/bin/rec", "-o", "/data/live/s.flv", "http://page.test/p?x=1",
                     "http://page.test/player.swf"]) in spawned


def test_nested_variable_in_a_name_stays_literal_in_exec_and_transcode():
    spawned = _published("live/[param]", "s", param="?x=/../../../../tmp/evil")
    argv = {kind: argv for kind, argv in spawned if kind != "exec" or argv[0] == "/bin/rec"}
    assert argv["exec"][2] == "/data/live/[param]/s.flv"
    assert argv["transcode"][-1] == "rtmp://127.0.0.1:1935/live/[param]/s_e"


def test_a_stream_named_like_an_option_never_becomes_one():
    spawned = _published("live", "-f")
    assert ("exec", ["/bin/rec", "-o", "/data/live/-f.flv", "", ""]) in spawned
    assert not [argv for kind, argv in spawned if argv[0] == "/bin/tool"], spawned
    assert [argv[-1] for kind, argv in spawned if kind == "transcode"] == \
        ["rtmp://127.0.0.1:1935/live/-f_e"]


def test_global_cap_default_and_reload(monkeypatch):
    from lib.server.ffmpeg import plugin as plugin_module
    from lib.server.ffmpeg.plugin import ProcessPlugin
    monkeypatch.setattr(plugin_module.os, "cpu_count", lambda: 1)
    server = _FakeServer(parse_text("listen 1935;\nvhost __defaultVhost__ { }\n"))
    procs = ProcessPlugin(server)
    assert server.processes.cap.limit == 8                  # 4 per core, at least 8
    monkeypatch.setattr(plugin_module.os, "cpu_count", lambda: 4)
    procs.on_reload(server.config, server.config)
    assert server.processes.cap.limit == 16
    server.config = parse_text("listen 1935;\nmax_processes 3;\nvhost __defaultVhost__ { }\n")
    procs.on_reload(None, server.config)
    assert server.processes.cap.limit == 3
