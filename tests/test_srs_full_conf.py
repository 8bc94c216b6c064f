"""SRS 7.0.18's own full.conf is accepted as SRS accepts it (issue 23 point 8).

tests/data/srs-7.0.18/ holds SRS's trunk/conf/full.conf and include.vhost.conf (see its
README.md: `is_full on;` blanked). SRS 7.0.18 run from that directory, `srs -t -c
conf/full.conf`, says "test is successful" and exits 0. srsedge used to stop at
`conf/full.conf:1261: duplicate vhost.play` (vhost jitter.srs.com has four play blocks; SRS's
get() uses the first and never looks at the others). Now `-t` succeeds too, and reports the
duplicates and the unsupported parts as warnings.
"""
import os
import subprocess
import sys

from lib.config import load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRS_DIR = os.path.join(REPO, "tests", "data", "srs-7.0.18")


def test_srs_full_conf_loads_with_warnings(monkeypatch):
    monkeypatch.chdir(SRS_DIR)                  # as SRS: includes relative to the work dir
    config = load_config("conf/full.conf")
    assert "conf/full.conf:1261: duplicate vhost.play ignored, the first (line 1258 of " \
           "conf/full.conf) is used, as SRS does" in config.warnings
    # the first play block of jitter.srs.com is empty: its values are the defaults, as SRS
    jitter = config.vhosts["jitter.srs.com"]
    assert (jitter.play.time_jitter, jitter.play.mix_correct, jitter.play.atc) == ("full", False, False)
    assert "include.srs.com" in config.vhosts   # the include was followed
    assert any("vhost.dash is not supported" in line for line in config.unsupported)


def test_srs_full_conf_passes_dash_t():
    run = subprocess.run([sys.executable, os.path.join(REPO, "srsedge.py"), "-t", "-c",
                          "conf/full.conf"], cwd=SRS_DIR, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "config file conf/full.conf test is successful" in run.stdout
    assert "conf/full.conf:1261: duplicate vhost.play ignored" in run.stderr
