"""HLS per vhost: [vhost] in the file names, and srsedge's HTTP server applying the owning
vhost's `security` play rules to the HLS files it serves (lib/server/hls/access.py).

Real process: vhost a.test (`deny play all`) and b.test publish the same app/stream; each writes
its own playlist, a.test's HLS is 403 over the HTTP server and b.test's is served. Units: the
file -> vhost mapping, including templates without [vhost] (every vhost that may have written
a file must allow it). The shipped configs keep each vhost's HLS apart.
"""
import glob
import os

import requests

from lib.config import load_config, parse_text
from lib.server.hls.access import HlsVhostRules, template_regex
from tests.conftest import ROOT, free_port, need_tool, wait_for, wait_port

PER_VHOST = "hls_m3u8_file [vhost]/[app]/[stream].m3u8; hls_ts_file [vhost]/[app]/[stream]-[seq].ts;"

TWO_VHOSTS = """
listen {port};
srs_log_tank console;
http_server { enabled on; listen HTTPPORT; dir {dir}/html; }
vhost a.test {
    security { enabled on; allow publish all; deny play all; }
    hls { enabled on; hls_path {dir}/html; hls_fragment 1; hls_window 6; NAMES }
}
vhost b.test {
    hls { enabled on; hls_path {dir}/html; hls_fragment 1; hls_window 6; NAMES }
}
"""


def test_deny_play_vhost_hls_is_403_and_vhosts_write_apart(server_factory, media_file,
                                                          publisher_factory):
    need_tool("ffmpeg")
    http_port = free_port()
    srv = server_factory(TWO_VHOSTS.replace("HTTPPORT", str(http_port)).replace("NAMES", PER_VHOST),
                         name="origin")
    wait_port(http_port)
    for vhost in ("a.test", "b.test"):
        publisher_factory(f"rtmp://127.0.0.1:{srv.port}/live?vhost={vhost}/livestream", media_file)
    html = srv.dir / "html"
    segments = {}

    def written(vhost):
        segments[vhost] = glob.glob(str(html / vhost / "live" / "livestream-*.ts"))
        return (html / vhost / "live" / "livestream.m3u8").exists() and segments[vhost]

    assert wait_for(lambda: written("a.test") and written("b.test"), 30), os.listdir(html)
    assert not (html / "live").exists()                    # nothing shared between the vhosts
    base = f"http://127.0.0.1:{http_port}"
    for vhost, status in (("a.test", 403), ("b.test", 200)):
        segment = os.path.basename(segments[vhost][0])
        for path in (f"/{vhost}/live/livestream.m3u8", f"/{vhost}/live/{segment}"):
            r = requests.get(base + path, timeout=5)
            assert r.status_code == status, (path, r.status_code)
    assert "#EXTINF" in requests.get(f"{base}/b.test/live/livestream.m3u8", timeout=5).text
    assert wait_for(lambda: "vhost a.test: security: play from 127.0.0.1" in srv.log_text(), 15)


def rules_for(names):
    conf = parse_text(TWO_VHOSTS.replace("{port}", "1935").replace("HTTPPORT", "8080")
                      .replace("{dir}", "/srv/x").replace("NAMES", names))
    return HlsVhostRules(conf)


def owners(rules, path):
    return [v.name for v in rules.owners(path)]


def test_files_map_to_the_vhost_in_their_name():
    rules = rules_for(PER_VHOST)
    assert owners(rules, "/srv/x/html/a.test/live/livestream.m3u8") == ["a.test"]
    assert owners(rules, "/srv/x/html/a.test/live/sub/livestream-12.ts") == ["a.test"]
    assert owners(rules, "/srv/x/html/b.test/live/livestream-12.ts") == ["b.test"]
    assert owners(rules, "/srv/x/html/c.test/live/livestream.m3u8") == []
    assert owners(rules, "/srv/x/html/a.test/live/index.html") == []     # not an HLS file
    assert owners(rules, "/srv/y/a.test/live/livestream.m3u8") == []     # not under hls_path
    assert rules.check_play("/srv/x/html/a.test/live/livestream.m3u8", "10.0.0.1")[0] is False
    assert rules.check_play("/srv/x/html/b.test/live/livestream.m3u8", "10.0.0.1") == (True, "")
    assert rules.check_play("/srv/x/html/crossdomain.xml", "10.0.0.1") == (True, "")


def test_shared_names_need_every_possible_writer_to_allow():
    """SRS's default names have no vhost: a file may be either vhost's, so a.test's deny holds."""
    rules = rules_for("")
    path = "/srv/x/html/live/livestream.m3u8"
    assert sorted(owners(rules, path)) == ["a.test", "b.test"]
    ok, reason = rules.check_play(path, "10.0.0.1")
    assert not ok and "a.test" in reason


def test_config_warns_about_vhosts_sharing_hls_files():
    assert any("vhosts a.test and b.test write HLS to the same files" in w
               for w in rules_for("").config.warnings)
    assert not rules_for(PER_VHOST).config.warnings


def test_template_regex():
    import re
    rx = re.compile(template_regex("[vhost]/[app]/[stream]-[timestamp]-[seq].ts", "a.b"))
    assert rx.fullmatch("a.b/live/s-1700000000000-3.ts")
    assert rx.fullmatch("a.b/live/s-1-3.m4s")                # fMP4 segments of the same name
    assert not rx.fullmatch("aXb/live/s-1-3.ts")             # the vhost is a literal


# One vhost, SRS's familiar /live/livestream.m3u8 (issue 23 point 9, docs/config.md "The shipped
# conf/srs.conf"): [vhost] would separate nothing; a second vhost makes -t warn.
SRS_URL_CONFS = {"srs.conf", "docker.conf"}


def test_shipped_configs_keep_hls_per_vhost():
    """Every shipped config that writes HLS names files with [vhost] (but the one-vhost
    SRS_URL_CONFS), and segments with [timestamp] (unique across restarts, so caches keyed by
    name stay right)."""
    checked = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "conf", "*.conf"))):
        config = load_config(path)
        for vhost in config.vhosts.values():
            if vhost.hls.enabled and not vhost.is_edge:
                hls = vhost.hls
                assert "[timestamp]" in hls.hls_ts_file, path
                if os.path.basename(path) in SRS_URL_CONFS:
                    assert len(config.vhosts) == 1 and hls.hls_m3u8_file == "[app]/[stream].m3u8"
                    continue
                assert hls.hls_m3u8_file.startswith("[vhost]/"), path
                assert hls.hls_ts_file.startswith("[vhost]/"), path
                checked += 1
    assert checked >= 4
