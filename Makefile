# srsedge: `make run` starts the server on the default config, `make test` runs the suite.
# Each sets up what it needs: Python deps in .venv (runtime; tests add requirements-dev.txt),
# system tools via apt-get (scripts/install-systools.sh: `make demo` only ffmpeg and nginx).
PY      := .venv/bin/python
CONF    ?= conf/srs.conf
PYTEST_ARGS ?=

.PHONY: run test bench demo compose-test setup venv devvenv systools demotools clean

venv: .venv/.deps-ok

devvenv: .venv/.dev-deps-ok

.venv/.deps-ok: requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(PY) -m pip install -q -r requirements.txt
	touch $@

.venv/.dev-deps-ok: .venv/.deps-ok requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

systools:
	@bash scripts/install-systools.sh test

demotools:
	@bash scripts/install-systools.sh demo

setup: devvenv systools

run: venv
	@mkdir -p objs
	$(PY) srsedge.py -c $(CONF)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

bench: setup
	$(PY) -m bench

demo: venv demotools
	@bash scripts/demo.sh

# the compose stack for real with podman (root; installs podman & co. when missing; CI runs it)
compose-test:
	bash scripts/compose-test.sh

clean:
	rm -rf objs .pytest_cache
