"""The HLS URLs the docs print are the ones the shipped configs serve (issue 23 point 9).

docs/deploy.md and compose/docker-compose.yml said `/live/livestream.m3u8` for the compose
cluster, whose conf/compose-origin.conf writes `[vhost]/[app]/[stream].m3u8`; README gave
conf/srs.conf's URL. The expected path is the config's hls_m3u8_file with the names filled in
(hls_path is the http_server dir in these configs), read from the config text here.
"""
import os
import re

from lib.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def served_playlist(conf_name):
    config = load_config(os.path.join(ROOT, "conf", conf_name))
    hls = config.vhosts["__defaultVhost__"].hls
    assert os.path.normpath(hls.hls_path) == os.path.normpath(config.http_server.dir)
    name = hls.hls_m3u8_file.replace("[vhost]", "__defaultVhost__").replace("[app]", "live")
    return "/" + name.replace("[stream]", "livestream")


def printed_playlists(doc, port):
    with open(os.path.join(ROOT, doc)) as f:
        return re.findall(rf"http://(?:localhost|127\.0\.0\.1):{port}(/\S+\.m3u8)", f.read())


def test_compose_hls_url_in_docs_is_served():
    path = served_playlist("compose-origin.conf")
    for doc in ("docs/deploy.md", "compose/docker-compose.yml"):
        printed = printed_playlists(doc, 8081)
        assert printed and set(printed) == {path}, (doc, printed, path)


def test_readme_hls_url_of_srs_conf_is_served():
    printed = printed_playlists("README.md", 8080)
    assert printed and set(printed) == {served_playlist("srs.conf")}, printed


def test_srs_conf_keeps_srs_familiar_hls_url():
    """docs/config.md, "The shipped conf/srs.conf": SRS's `/live/livestream.m3u8`."""
    assert served_playlist("srs.conf") == "/live/livestream.m3u8"
    assert served_playlist("docker.conf") == "/live/livestream.m3u8"
