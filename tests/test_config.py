"""Tests for lib/config: grammar, includes, legacy transform, schema, typed view, conf files."""

import dataclasses
import os

import pytest

from lib.config import ConfigError, load_config, parse_text
from lib.config import schema, sections, view
from lib.config.parser import parse_string

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def error_of(text, filename="t.conf"):
    with pytest.raises(ConfigError) as info:
        parse_text(text, filename)
    return info.value


# --- grammar ------------------------------------------------------------------------------

def test_statements_blocks_quotes_comments():
    root = parse_string(
        "# comment\n"
        "listen 1935 '127.0.0.1:1936';  # trailing comment\n"
        'pid "./objs/a b.pid";\n'
        "vhost v {\n"
        "    play { gop_cache on; }\n"
        "    hls\n"
        "    {\n"
        "        enabled\n"
        "            on;\n"
        "    }\n"
        "}\n", "x.conf")
    listen, pid, vhost = root.children
    assert (listen.name, listen.args, listen.line, listen.file) == ("listen", ["1935", "127.0.0.1:1936"], 2, "x.conf")
    assert pid.args == ["./objs/a b.pid"]
    assert vhost.block and vhost.args == ["v"] and vhost.line == 4
    play, hls = vhost.children
    assert play.children[0].args == ["on"] and play.children[0].line == 5
    assert hls.line == 6 and hls.children[0].line == 8 and hls.children[0].end_line == 9


def test_grammar_quirks_follow_srs():
    root = parse_string("a x#y;b 'multi\nline' \"it's\";c d{}e;")
    a, b, c, e = root.children
    assert a.args == ["x#y"]                        # '#' inside a word is a character
    assert b.args == ["multi\nline", "it's"] and b.line == 1
    assert c.args == ["d"] and c.block and c.children == []
    assert e.line == 2 and e.args == []
    assert parse_string("x '';").children[0].args == [""]   # srsedge keeps empty quoted words


@pytest.mark.parametrize("text, line, message", [
    ("listen 1935;\nvhost a {\n  enabled on;\n", 2, "block 'vhost a {' is not closed"),
    ("listen 1935;\n}\n", 2, "unexpected '}'"),
    ("vhost a {\n  enabled on\n}\n", 2, "missing ';' after 'enabled on'"),
    ("pid x;\nlisten 1935", 2, "missing ';' after 'listen 1935'"),
    ("pid x;\n  ;\n", 2, "unexpected ';'"),
    ("{ }", 1, "unexpected '{'"),
    ("pid 'x;\n\n", 1, "unterminated ' quote"),
    ("pid \"x\"y;", 1, "unexpected 'y' after quoted word"),
])
def test_grammar_errors_carry_file_and_line(text, line, message):
    e = error_of(text)
    assert (e.file, e.line) == ("t.conf", line)
    assert message in e.message
    assert str(e).startswith(f"t.conf:{line}: ")


def test_missing_semicolon_between_directives_is_caught_by_schema():
    e = error_of("vhost a {\n    play {\n        gop_cache on\n        mw_latency 100;\n    }\n}\n")
    assert e.line == 3
    assert str(e) == "t.conf:3: vhost.play.gop_cache: want 1 value, got 3 (missing ';' on line 3?)"


def test_empty_and_comment_only_files():
    assert parse_text("").listen == [("", 1935)]
    assert parse_text("# nothing\n\n").vhosts == {}


# --- include ------------------------------------------------------------------------------

def test_include_splices_in_place_at_any_level_and_nests(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.conf").write_text(
        "listen 1935;\ninclude sub/vhosts.conf;\nmax_connections 7;\n")
    (tmp_path / "sub" / "vhosts.conf").write_text(
        "vhost a {\n    include play.conf;\n}\nvhost b { }\n")
    (tmp_path / "sub" / "play.conf").write_text("play {\n    gop_cache off;\n}\n")
    config = load_config(str(tmp_path / "main.conf"))
    names = [d.name for d in config.root.children]
    assert names == ["listen", "vhost", "vhost", "max_connections"]
    assert config.vhost("a").play.gop_cache is False
    assert config.vhost("b").play.gop_cache is True
    assert config.max_connections == 7
    play = config.vhost("a").directive.get("play")
    assert play.file.endswith("play.conf") and play.line == 1


def test_include_several_files_and_errors_point_into_the_included_file(tmp_path):
    (tmp_path / "a.conf").write_text("pid a.pid;\n")
    (tmp_path / "b.conf").write_text("\nvhost x {\n    play { gop_cache yes; }\n}\n")
    (tmp_path / "main.conf").write_text("include a.conf b.conf;\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "main.conf"))
    assert info.value.file.endswith("b.conf") and info.value.line == 3
    assert "vhost.play.gop_cache: want on|off, got 'yes'" in str(info.value)


def test_include_missing_file(tmp_path):
    (tmp_path / "main.conf").write_text("listen 1935;\n\ninclude nope.conf;\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "main.conf"))
    e = info.value
    assert e.file == str(tmp_path / "main.conf") and e.line == 3
    assert "include nope.conf: cannot read" in str(e)


def test_include_cycle_and_bad_include(tmp_path):
    (tmp_path / "a.conf").write_text("include b.conf;\n")
    (tmp_path / "b.conf").write_text("pid x;\ninclude a.conf;\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "a.conf"))
    assert info.value.line == 2 and "cycle" in str(info.value)
    assert "include needs at least one file" in str(error_of("include ;"))
    assert "not a block" in str(error_of("include x.conf { }"))


def test_included_file_must_be_balanced(tmp_path):
    (tmp_path / "open.conf").write_text("vhost a {\n")
    (tmp_path / "main.conf").write_text("include open.conf;\n}\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "main.conf"))
    assert info.value.file.endswith("open.conf") and info.value.line == 1


def test_unreadable_file_has_no_line(tmp_path):
    path = str(tmp_path / "missing.conf")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line is None
    assert str(info.value).startswith(f"{path}: cannot read: ")
    (tmp_path / "bin.conf").write_bytes(b"pid \xff;\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(tmp_path / "bin.conf"))


# --- legacy transform --------------------------------------------------------------------------

def test_legacy_vhost_directives_move_like_srs():
    config = parse_text("""
        http_stream { enabled on; listen 8081; }
        vhost edge.com {
            mode remote;
            origin 10.0.0.1 10.0.0.2:19350;
            token_traverse on;
            vhost up.com;
            debug_srs_upnode off;
            gop_cache off;
            queue_length 5;
            time_jitter zero;
            publish_1stpkt_timeout 1000;
            publish_normal_timeout 2000;
            mr { enabled on; latency 100; }
            forward 127.0.0.1:1936;
            refer a.com;
            refer_play b.com;
        }
    """)
    v = config.vhosts["edge.com"]
    assert v.is_edge
    assert v.cluster.origin == [("10.0.0.1", 1935), ("10.0.0.2", 19350)]
    assert (v.cluster.token_traverse, v.cluster.vhost, v.cluster.debug_srs_upnode) == (True, "up.com", False)
    assert (v.play.gop_cache, v.play.queue_length, v.play.time_jitter) == (False, 5.0, "zero")
    assert (v.publish.firstpkt_timeout, v.publish.normal_timeout) == (1000, 2000)
    assert (v.publish.mr, v.publish.mr_latency) == (True, 100)
    assert v.forward.enabled and v.forward.destination == [("127.0.0.1", 1936)]
    assert v.refer.enabled and v.refer.all == ["a.com"] and v.refer.play == ["b.com"]
    assert config.http_server.enabled and config.http_server.listen == ("", 8081)
    cluster = v.directive.get("cluster")
    assert [d.name for d in cluster.children] == ["mode", "origin", "token_traverse", "vhost", "debug_srs_upnode"]
    assert cluster.get("mode").line == 4                     # keeps where it was written


def test_legacy_directive_overrides_block_value_and_errors_use_new_path():
    config = parse_text("vhost a { cluster { mode local; origin x; } mode remote; }")
    assert config.vhosts["a"].is_edge
    e = error_of("vhost a {\n  gop_cache maybe;\n}\n")
    assert (e.line, e.path) == (2, "vhost.play.gop_cache")


# --- defaults ------------------------------------------------------------------------------

def test_every_top_level_default():
    c = parse_text("")
    assert c.listen == [("", 1935)]
    assert c.pid == "./objs/srs.pid"
    assert c.log_tank == "file"
    assert c.log_level == "trace"
    assert c.log_file == "./objs/srs.log"
    assert c.max_connections == 1000
    assert c.chunk_size == 60000
    assert c.daemon is False
    assert c.workers == 1
    assert c.ff_log_dir == "./objs"
    assert c.utc_time is False
    assert c.work_dir == "./"
    assert c.pithy_print_ms == 10000
    assert (c.grace_start_wait, c.grace_final_wait, c.force_grace_quit) == (2300, 3200, False)
    assert c.http_api == view.HttpApi(False, ("127.0.0.1", 1985), True, [], False,
                                      view.RawApi(False, False, False, False),
                                      view.HttpAuth(False, "", ""),
                                      view.ApiHttps(False, ("127.0.0.1", 1990), "./conf/server.key",
                                                    "./conf/server.crt"))
    # SRS 7's defaults (srs_app_config.cpp get_https_*): 8088 and 1990, ./conf/server.{key,crt}
    assert c.http_server == view.HttpServer(False, ("", 8080), "./objs/nginx/html", True,
                                            view.ServerHttps(False, ("", 8088),
                                                             "./conf/server.key",
                                                             "./conf/server.crt"))
    assert c.vhosts == {} and c.vhost("any") is None and c.warnings == []
    assert c.path == "<string>" and c.root.name == "root"


def test_vhost_defaults():
    v = parse_text("chunk_size 4096; vhost __defaultVhost__ {}").vhost("anything")
    assert v.name == "__defaultVhost__" and v.enabled and not v.is_edge
    assert (v.chunk_size, v.in_ack_size, v.out_ack_size, v.min_latency, v.tcp_nodelay) == (4096, 0, 2500000, False, False)
    assert v.play == view.Play(True, 2500, 30.0, "full", False, False, False, 350, 8, 0.0, False,
                               300.0)
    assert v.publish == view.Publish(False, 350, 20000, 5000, True, True, 0.0)
    assert v.http_hooks.enabled is False and v.http_hooks.on_publish == []
    assert v.cluster == view.Cluster("local", [], False, None, True, [], False, "rtmp", False, 3.0, 5.0, None, 6.0)
    assert v.forward == view.Forward(False, [], None)
    assert (v.hls.enabled, v.hls.hls_fragment, v.hls.hls_window, v.hls.hls_td_ratio) == (False, 10.0, 60.0, 1.0)
    assert (v.hls.hls_path, v.hls.hls_m3u8_file, v.hls.hls_ts_file) == (
        "./objs/nginx/html", "[app]/[stream].m3u8", "[app]/[stream]-[seq].ts")
    assert (v.hls.hls_cleanup, v.hls.hls_dispose, v.hls.hls_wait_keyframe, v.hls.hls_on_error) == (True, 120, True, "continue")
    assert v.hls.hls_key_file_path == v.hls.hls_path == v.hls.hls_key_url
    assert v.http_remux == view.HttpRemux(False, 0.0, False, True, True, True, "[vhost]/[app]/[stream].flv")
    assert v.http_static == view.HttpStatic(False, "[vhost]/", "./objs/nginx/html")
    assert v.security == view.Security(False, [])
    assert v.dvr.enabled is False and v.dvr.dvr_plan == "session" and v.exec == view.Exec(False, [])


def test_min_latency_changes_mw_msgs_default_only():
    c = parse_text("vhost a { min_latency on; } vhost b { min_latency on; play { mw_msgs 4; } }")
    assert c.vhosts["a"].play.mw_msgs == 0 and c.vhosts["b"].play.mw_msgs == 4


def field_drift(block, cls, path):
    """Problems between a schema block and its section class: a directive no field takes its
    value from, or a field that names no directive. A directive may go without a field only
    if it is an open block srsedge reports as unsupported (vhost.rtc...). Blocks without a
    class of their own (ingest's input) count by their children (input.type)."""
    def directives(spec, prefix):
        for name, child in spec.children.items():
            if isinstance(child, schema.Block) and child.children is not None \
                    and id(child) not in classes:
                yield from directives(child, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", child

    classes = {id(c.block) for c in sections.SECTIONS}
    in_schema = dict(directives(block, ""))
    taken = {}
    for f in dataclasses.fields(cls):
        if "computed" not in f.metadata:
            for directive in f.metadata.get("covers", (f.name,)):
                taken[directive] = f.name
    problems = [f"{path}.{d} has no field in {cls.__name__}" for d, spec in in_schema.items()
                if d not in taken and not (isinstance(spec, schema.Block) and spec.children is None
                                           and f"{path}.{d}" in schema.UNSUPPORTED)]
    problems += [f"{cls.__name__}.{name} names no directive of {path} ({d})"
                 for d, name in taken.items() if d not in in_schema]
    return problems


def test_every_directive_has_a_field_and_every_field_a_directive():
    """Walks the schema from ROOT: each block with a section class, each of its directives."""
    classes = {id(c.block): c for c in sections.SECTIONS}
    problems, reached = [], set()

    def walk(block, path):
        for name, spec in block.children.items():
            if isinstance(spec, schema.Block) and id(spec) in classes:
                cls = classes[id(spec)]
                reached.add(cls)
                problems.extend(field_drift(spec, cls, f"{path}{name}"))
                walk(spec, f"{path}{name}.")

    walk(schema.ROOT, "")
    assert problems == []
    assert reached == set(sections.SECTIONS)
    # The top level is Config's attributes: each names a directive; each directive is an
    # attribute, a section, or reported as unsupported.
    attrs = {view._ROOT_NAMES.get(a, a) for a in view._ROOT_ATTRS}
    assert attrs <= set(schema.ROOT.children)
    left = [name for name, spec in schema.ROOT.children.items() if name not in attrs
            and name not in schema.UNSUPPORTED and id(spec) not in classes]
    assert left == []


def test_field_drift_is_found():
    """The check above can fail: a directive added without a field, a field without a directive."""
    block = schema.block(enabled=schema.on_off("off"), extra=schema.block(x=schema.text()),
                         rtc=schema.open_block(), params=schema.open_block())
    cls = sections.section_class("T", block, [("stale", int, sections.covers("gone"))])
    assert field_drift(block, cls, "vhost") == [     # vhost.rtc: open and reported unsupported
        "vhost.extra.x has no field in T", "vhost.params has no field in T",
        "T.stale names no directive of vhost (gone)"]


def test_sections_are_frozen_and_keep_their_extras():
    v = parse_text("vhost v { cluster { mode remote; origin o; } security { deny play all; } }").vhost("v")
    assert v.is_edge and v.security.rules == [("deny", "play", "all")]
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.cluster.mode = "local"
    assert dataclasses.replace(v, cluster=dataclasses.replace(v.cluster, mode="local")).is_edge is False


# --- typed values and their errors ------------------------------------------------------------

def test_typed_values():
    c = parse_text("""
        listen 1935 127.0.0.1:19350 [::1]:1937;
        http_api { enabled on; listen 0.0.0.0:1985; auth { enabled on; username u; password p; } }
        http_server { enabled on; listen 127.0.0.1:8080; dir /srv; crossdomain off; }
        vhost a {
            chunk_size 4096;
            play { queue_length 2.5; mw_latency 100; atc on; }
            http_hooks { enabled on; on_publish http://a/p https://b/p; on_play http://a/play; }
            cluster { mode remote; origin a.example b.example:1936 [::1]:1937; edge_idle_timeout 0.5; }
            forward { enabled on; destination 127.0.0.1:19351 backup; }
            security { enabled on; allow publish 127.0.0.1; deny play 10.0.0.0/8; allow play all; }
            hls { enabled on; hls_fragment 2.5; hls_window 20; hls_on_error ignore; }
            http_remux { enabled on; mount [vhost]/[app]/[stream].flv; fast_cache 30; }
        }
    """)
    assert c.listen == [("", 1935), ("127.0.0.1", 19350), ("::1", 1937)]
    assert c.http_api.enabled and c.http_api.listen == ("0.0.0.0", 1985)
    assert c.http_api.auth == view.HttpAuth(True, "u", "p")
    assert c.http_server == view.HttpServer(True, ("127.0.0.1", 8080), "/srv", False,
                                            c.http_server.https)
    v = c.vhost("a")
    assert v.chunk_size == 4096
    assert (v.play.queue_length, v.play.mw_latency, v.play.atc) == (2.5, 100, True)
    assert v.http_hooks.on_publish == ["http://a/p", "https://b/p"] and v.http_hooks.on_stop == []
    assert v.cluster.origin == [("a.example", 1935), ("b.example", 1936), ("::1", 1937)]
    assert v.cluster.edge_idle_timeout == 0.5
    assert v.forward.destination == [("127.0.0.1", 19351), ("backup", 1935)]
    assert v.security.rules == [("allow", "publish", "127.0.0.1"), ("deny", "play", "10.0.0.0/8"),
                                ("allow", "play", "all")]
    assert (v.hls.enabled, v.hls.hls_fragment, v.hls.hls_window, v.hls.hls_on_error) == (True, 2.5, 20.0, "ignore")
    assert v.http_remux.enabled and v.http_remux.fast_cache == 30.0
    assert v.directive.name == "vhost" and v.directive.args == ["a"]
    assert c.warnings == ["vhost a: edge does not do hls; the HLS edge is the nginx tier (in <string>:5)"]


@pytest.mark.parametrize("text, message", [
    ("vhost a {\n  play { gop_cache yes; }\n}", "2: vhost.play.gop_cache: want on|off, got 'yes'"),
    ("max_connections lots;", "1: max_connections: want an integer >= 1, got 'lots'"),
    ("max_connections 0;", "1: max_connections: want an integer >= 1, got '0'"),
    ("chunk_size 100;", "1: chunk_size: want an integer in 128..65536, got '100'"),
    ("chunk_size 70000;", "1: chunk_size: want an integer in 128..65536, got '70000'"),
    ("srs_log_tank syslog;", "1: srs_log_tank: want console|file, got 'syslog'"),
    ("srs_log_level debug;", "srs_log_level: want verbose|info|trace|warn|error, got 'debug'"),
    ("pid a b;", "1: pid: want 1 value, got 2"),
    ("listen;", "1: listen: want at least 1 value, got none"),
    ("listen 70000;", "listen: want a port or ip:port, got '70000'"),
    ("listen host:1935;", "listen: want a port or ip:port, got 'host:1935'"),
    ("vhost a { play { time_jitter some; } }", "vhost.play.time_jitter: want full|zero|off, got 'some'"),
    ("vhost a { play { queue_length -1; } }", "vhost.play.queue_length: want a number >= 0, got '-1'"),
    ("vhost a { cluster { mode edge; } }", "vhost.cluster.mode: want local|remote, got 'edge'"),
    ("vhost a { cluster { origin h:port; } }", "vhost.cluster.origin: want host[:port], got 'h:port'"),
    ("vhost a { http_hooks { on_play ftp://x; } }", "vhost.http_hooks.on_play: want an http:// or https:// URL"),
    ("vhost a { security { allow read all; } }", "vhost.security.allow: want publish|play, got 'read all'"),
    ("vhost a { security { deny play 300.1.1.1; } }", "vhost.security.deny: want all|IP|CIDR"),
    ("vhost a { security { deny play; } }", "vhost.security.deny: want 2 values"),
    ("workers 0;", "workers: want an integer >= 1, got '0'"),
])
def test_bad_values(text, message):
    assert message in str(error_of(text))


def test_unknown_directive_names_its_path():
    text = "listen 1935;\nvhost __defaultVhost__ {\n    cluster {\n        mode remote;\n        orign 127.0.0.1;\n    }\n}\n"
    e = error_of(text, "edge.conf")
    assert str(e).startswith("edge.conf:5: unknown directive vhost.cluster.orign")
    assert "did you mean origin?" in str(e)
    assert (e.file, e.line, e.path) == ("edge.conf", 5, "vhost.cluster.orign")
    assert str(error_of("lisen 1935;")).startswith("t.conf:1: unknown directive lisen")


@pytest.mark.parametrize("text, message", [
    ("vhost a { play on; }", "vhost.play: want a block { ... }, got 'play;'"),
    ("pid { }", "pid: want a value ending with ';', got a block"),
    ("vhost a { play { gop_cache { } } }", "vhost.play.gop_cache: want a value"),
    ("vhost { }", "vhost: want one name before '{', got 0"),
    ("http_api x { }", "http_api: want no arguments before '{', got 1"),
    ("vhost a {\n cluster { mode remote; }\n}", "2: vhost a: cluster.mode remote needs cluster.origin"),
])
def test_structure_errors(text, message):
    assert message in str(error_of(text))


@pytest.mark.parametrize("text, warning, check", [
    ("vhost a { }\nvhost a { enabled off; }", "t.conf:2: duplicate vhost a ignored, the first "
     "(line 1 of t.conf) is used, as SRS does", lambda c: c.vhost("a").enabled),
    ("pid a;\npid b;", "t.conf:2: duplicate pid ignored", lambda c: c.pid == "a"),
    ("vhost a { ingest x { } ingest x { enabled on; } }", "t.conf:1: duplicate vhost.ingest x ignored",
     lambda c: [i.enabled for i in c.vhosts["a"].ingest] == [False]),
])
def test_duplicates_warn_and_the_first_is_used_as_srs(text, warning, check):
    c = parse_text(text, "t.conf")              # SRS accepts them: its get() takes the first
    assert any(w.startswith(warning) for w in c.warnings), c.warnings
    assert check(c)


def test_vhost_lookup():
    c = parse_text("vhost a { } vhost off.com { enabled off; } vhost __defaultVhost__ { }")
    assert c.vhost("a").name == "a"
    assert c.vhost("other").name == "__defaultVhost__"
    assert c.vhost("off.com") is None                   # disabled: no fallback to the default
    assert parse_text("vhost a { }").vhost("b") is None


def test_repeatable_blocks_and_open_blocks_accept_anything():
    c = parse_text("""
        stream_caster { enabled off; caster rtsp; whatever { deep; } }
        stream_caster { enabled off; }
        rtc_server { enabled on; listen 8000; candidate $CANDIDATE; }
        vhost a {
            transcode live { enabled on; ffmpeg ff; engine e { vcodec libx264; vparams { t 1; } } }
            transcode { enabled off; }
            exec { enabled on; publish ./a [url]; publish ./b; }
        }
    """)
    assert c.vhost("a").exec.publish == [["./a", "[url]"], ["./b"]]


def test_edge_warnings_for_hls_dvr_transcode():
    c = parse_text("vhost e { cluster { mode remote; origin o; } dvr { enabled on; } "
                   "transcode x { enabled on; } hls { enabled off; } }")
    assert c.warnings and "edge does not do dvr/transcode" in c.warnings[0]
    assert parse_text("vhost o { hls { enabled on; } dvr { enabled on; } }").warnings == []


def test_directive_equals_ignores_location_for_reload_diffs():
    a = parse_string("vhost a { play { gop_cache on; } }", "a.conf")
    b = parse_string("\n\nvhost a {\n play {\n gop_cache on;\n }\n}\n", "b.conf")
    c = parse_string("vhost a { play { gop_cache off; } }")
    assert a.children[0].equals(b.children[0])
    assert not a.children[0].equals(c.children[0])
    assert not a.children[0].equals(None)


# --- conf files ---------------------------------------------------------------------------------

def test_repo_conf_files_load():
    srs = load_config(os.path.join(REPO, "conf/srs.conf"))
    assert srs.listen == [("", 1935)] and srs.log_tank == "console" and srs.daemon is False
    assert srs.http_api.enabled and srs.http_api.listen == ("127.0.0.1", 1985)
    assert srs.http_server.enabled and srs.http_server.listen == ("", 8080)
    assert srs.vhost("x").play.gop_cache and srs.vhost("x").hls.enabled and srs.warnings == []

    origin = load_config(os.path.join(REPO, "conf/origin.conf"))
    assert origin.listen == [("", 19350)] and origin.pid == "objs/origin.pid"
    assert origin.log_file == "./objs/origin.log" and not origin.vhost("x").is_edge

    edge = load_config(os.path.join(REPO, "conf/edge.conf"))
    assert edge.listen == [("", 1935)] and edge.pid == "objs/edge.pid"
    assert edge.vhost("x").is_edge and edge.vhost("x").cluster.origin == [("127.0.0.1", 19350)]


def test_edge_document_examples_verbatim():
    origin = parse_text("listen              19350;\npid                 objs/origin.pid;\n"
                        "srs_log_file        ./objs/origin.log;\nvhost __defaultVhost__ {\n}\n")
    edge = parse_text("listen              1935;\npid                 objs/edge.pid;\n"
                      "srs_log_file        ./objs/edge.log;\nvhost __defaultVhost__ {\n"
                      "    cluster {\n        mode            remote;\n"
                      "        origin          127.0.0.1:19350;\n    }\n}\n")
    assert origin.vhost("live").cluster.mode == "local"
    assert edge.vhost("live").cluster.origin == [("127.0.0.1", 19350)]


FULL_CONF = """
# A full.conf-like sample: every block of the whitelist.
listen              1935 127.0.0.1:1936;
pid                 ./objs/srs.pid;
chunk_size          60000;
ff_log_dir          ./objs;
ff_log_level        info;
srs_log_tank        file;
srs_log_level       trace;
srs_log_level_v2    info;
srs_log_file        ./objs/srs.log;
max_connections     1000;
daemon              off;
workers             2;
utc_time            off;
work_dir            ./;
asprocess           off;
server_id           srs-1;
pithy_print_ms      10000;
grace_start_wait    2300;
grace_final_wait    3200;
force_grace_quit    off;
empty_ip_ok         on;
disable_daemon_for_docker on;
inotify_auto_reload off;
auto_reload_for_docker on;
tcmalloc_release_rate 0.8;
query_latest_version off;
first_wait_for_qlv  30;
is_full             off;
in_docker           off;
heartbeat { enabled off; interval 9.3; url http://127.0.0.1:8085/api/v1/servers; device_id "my-srs-device"; summaries off; }
stats { enabled on; network 0; disk sda sdb xvda xvdb; }
exporter { enabled off; listen 9972; label cn-beijing; tag cn-edge; }
circuit_breaker { enabled on; high_threshold 90; high_pulse 2; critical_threshold 95; critical_pulse 1; dying_threshold 99; dying_pulse 5; }
threads { interval 5; }
tencentcloud_cls { enabled off; label cn-beijing; tag cn-edge; secret_id xxx; secret_key yyy; endpoint ap-guangzhou.cls.tencentcs.com; topic_id zzz; }
tencentcloud_apm { enabled off; team apm-xxx; token xxx; endpoint ap-guangzhou.apm.tencentcs.com:4317; service_name srs-server; }
http_api {
    enabled         on;
    listen          1985;
    crossdomain     on;
    raw_api { enabled off; allow_reload off; allow_query off; allow_update off; }
    auth { enabled off; username admin; password admin; }
    https { enabled off; listen 1990; key ./conf/server.key; cert ./conf/server.crt; }
}
http_server {
    enabled         on;
    listen          8080;
    dir             ./objs/nginx/html;
    crossdomain     on;
    https { enabled off; listen 8088; key ./conf/server.key; cert ./conf/server.crt; }
}
rtc_server { enabled off; listen 8000; candidate *; tcp { enabled off; listen 8000; } black_hole { enabled off; addr 1.2.3.4:10000; } }
srt_server { enabled off; listen 10080; maxbw 1000000000; connect_timeout 4000; peerlatency 0; recvlatency 0; latency 0; tsbpdmode off; tlpktdrop off; sendbuf 2000000; recvbuf 2000000; }
stream_caster { enabled off; caster mpegts_over_udp; output rtmp://127.0.0.1/live/livestream; listen 8935; }
stream_caster { enabled off; caster flv; output rtmp://127.0.0.1/[app]/[stream]; listen 8936; }
stream_caster { enabled off; caster gb28181; output rtmp://127.0.0.1/live/[stream]; listen 9000; sip { enabled on; listen 5060; timeout 60; reinvite 5; candidate *; } }
vhost __defaultVhost__ {
    enabled         on;
    min_latency     off;
    tcp_nodelay     off;
    chunk_size      128;
    in_ack_size     0;
    out_ack_size    2500000;
    publish {
        mr off; mr_latency 350; firstpkt_timeout 20000; normal_timeout 7000;
        parse_sps on; try_annexb_first on; kickoff_for_idle 0;
    }
    play {
        gop_cache off; gop_cache_max_frames 2500; queue_length 10; time_jitter full; atc off;
        mix_correct off; atc_auto off; mw_latency 350; mw_msgs 8; send_min_interval 10.0;
        reduce_sequence_header on;
    }
    http_hooks {
        enabled         on;
        on_connect      http://127.0.0.1:8085/api/v1/clients http://localhost:8085/api/v1/clients;
        on_close        http://127.0.0.1:8085/api/v1/clients;
        on_publish      http://127.0.0.1:8085/api/v1/streams;
        on_unpublish    http://127.0.0.1:8085/api/v1/streams;
        on_play         http://127.0.0.1:8085/api/v1/sessions;
        on_stop         http://127.0.0.1:8085/api/v1/sessions;
        on_dvr          http://127.0.0.1:8085/api/v1/dvrs;
        on_hls          http://127.0.0.1:8085/api/v1/hls;
        on_hls_notify   http://127.0.0.1:8085/api/v1/hls/[app]/[stream]/[ts_url][param];
    }
    forward { enabled off; destination 127.0.0.1:1936 127.0.0.1:1937; backend http://127.0.0.1:8085/api/v1/forward; }
    hls {
        enabled on; hls_fragment 10; hls_td_ratio 1.0; hls_aof_ratio 1.2; hls_window 60;
        hls_on_error continue; hls_path ./objs/nginx/html; hls_m3u8_file [app]/[stream].m3u8;
        hls_ts_file [app]/[stream]-[seq].ts; hls_ts_floor off; hls_entry_prefix http://your-server;
        hls_acodec aac; hls_vcodec h264; hls_cleanup on; hls_dispose 120; hls_nb_notify 64;
        hls_wait_keyframe on; hls_keys on; hls_fragments_per_key 5; hls_key_file [app]/[stream]-[seq].key;
        hls_key_file_path ./objs/nginx/html; hls_key_url https://localhost:8080; hls_dts_directly on;
        hls_ctx off; hls_ts_ctx off; hls_use_fmp4 off; hls_recover on;
    }
    http_remux { enabled on; fast_cache 30; drop_if_not_match off; has_audio on; has_video on; guess_has_av on; mount [vhost]/[app]/[stream].flv; hstrs on; }
    http_static { enabled on; mount [vhost]/hls; dir ./objs/nginx/html/hls; }
    security { enabled on; allow play all; allow publish 127.0.0.1; deny publish all; }
    refer { enabled on; all github.com github.io; publish github.com; play github.com; }
    dvr { enabled off; dvr_apply all; dvr_plan session; dvr_path ./objs/nginx/html/[app]/[stream].[timestamp].flv; dvr_duration 30; dvr_wait_keyframe on; time_jitter full; }
    exec { enabled off; publish ./objs/ffmpeg/bin/ffmpeg -f flv -i [url] -c copy -y ./[stream].flv; }
    transcode live {
        enabled on; ffmpeg ./objs/ffmpeg/bin/ffmpeg;
        engine ff { enabled on; vfilter { i ./doc/ffmpeg-logo.png; filter_complex overlay=10:10; } vcodec libx264; vbitrate 1500; vfps 25; vwidth 768; vheight 320; vthreads 12; vprofile main; vpreset medium; vparams { t 100; } acodec libfdk_aac; abitrate 70; asample_rate 44100; achannels 2; aparams { profile:a aac_low; } output rtmp://127.0.0.1:[port]/[app]?vhost=[vhost]/[stream]_[engine]; }
    }
    ingest livestream { enabled off; input { type file; url ./doc/source.flv; } ffmpeg ./objs/ffmpeg/bin/ffmpeg; engine { enabled off; output rtmp://127.0.0.1:[port]/live/livestream; } }
    bandcheck { enabled off; key "35c9b402c12a7246868752e2878f7e0e"; interval 30; limit_kbps 4000; }
    rtc { enabled off; rtmp_to_rtc off; rtc_to_rtmp off; nack on; twcc on; }
    srt { enabled off; srt_to_rtmp on; }
    hds { enabled off; hds_fragment 10; hds_window 60; hds_path ./objs/nginx/html; }
    dash { enabled off; dash_fragment 30; dash_update_period 150; dash_timeshift 300; dash_path ./objs/nginx/html; dash_mpd_file [app]/[stream].mpd; }
}
vhost edge.srs.com {
    cluster {
        mode remote; origin 127.0.0.1:1935 localhost:1935; token_traverse off; vhost same.edge.srs.com;
        debug_srs_upnode on; protocol rtmp; follow_client off; edge_idle_timeout 3; origin_data_timeout 5;
    }
}
vhost origin.srs.com {
    cluster { mode local; origin_cluster on; coworkers 127.0.0.1:9091 127.0.0.1:9092; }
}
vhost disabled.srs.com { enabled off; }
"""


def test_full_conf_like_sample_parses():
    c = parse_text(FULL_CONF, "full.conf")
    assert c.listen == [("", 1935), ("127.0.0.1", 1936)] and c.workers == 2
    assert list(c.vhosts) == ["__defaultVhost__", "edge.srs.com", "origin.srs.com", "disabled.srs.com"]
    d = c.vhost("__defaultVhost__")
    assert d.chunk_size == 128 and d.publish.normal_timeout == 7000 and d.play.send_min_interval == 10.0
    assert len(d.http_hooks.on_connect) == 2 and d.hls.hls_dispose == 120 and d.hls.hls_keys
    assert d.http_remux.enabled and d.directive.get("http_remux").get("hstrs") is None
    assert d.refer.all == ["github.com", "github.io"] and len(d.security.rules) == 3
    assert c.vhost("edge.srs.com").cluster.vhost == "same.edge.srs.com"
    assert c.vhost("origin.srs.com").cluster.coworkers == ["127.0.0.1:9091", "127.0.0.1:9092"]
    assert c.vhost("disabled.srs.com") is None
    assert c.warnings == []
