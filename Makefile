# srsedge: `make run` starts the server on the default config, `make test` runs the suite.
# Each sets up what it needs: Python deps in .venv (runtime; tests add requirements-dev.txt),
# the browser players (npm ci in www/, when npm is present), system tools via apt-get
# (scripts/install-systools.sh: `make demo` only ffmpeg and nginx).
PY      := .venv/bin/python
CONF    ?= conf/srs.conf
PYTEST_ARGS ?=

.PHONY: run test bench demo compose-test setup venv devvenv systools demotools www accel clean

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

# The JavaScript players (mpegts.js, hls.js: pinned in www/package-lock.json) that the http_server
# serves at /players/. Without npm the server still runs; the players page says what is missing.
www: www/node_modules/.installed

www/node_modules/.installed: www/package.json www/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd www && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "npm not found: the browser players (/players/) need it once: apt-get install npm, then make www"; \
	fi

# The optional C accelerators (scripts/build_accel.py lists them: chunk reader, socket pump,
# TS packetizer, loop clock, a source's media path):
# built when a C compiler is there, otherwise the pure-Python code runs (the server says which
# reader at -t and at start).
accel: venv
	@$(PY) scripts/build_accel.py

setup: devvenv systools www accel

run: venv accel
	@$(MAKE) --no-print-directory www || echo "warning: npm ci failed in www/: /players/ will say what is missing"
	@mkdir -p objs
	$(PY) srsedge.py -c $(CONF)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

bench: setup
	$(PY) -m bench

demo: venv accel demotools
	@bash scripts/demo.sh

# the compose stacks (origin + backup, the origin cluster) for real with podman (root; installs podman & co. when missing; CI runs it)
compose-test:
	bash scripts/compose-test.sh

clean:
	rm -rf objs .pytest_cache
