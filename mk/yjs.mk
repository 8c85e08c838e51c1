# y-websocket interoperability (issue 4). Included by the top-level Makefile, which defines VENV,
# PY, STAMP and test-setup.
#
#   make yjs-setup        npm ci in tests/interop (yjs, y-websocket, playwright-core, esbuild, all
#                         pinned by package-lock.json) and Debian's chromium when it is missing
#   make yjs-test         the interop and browser tests only
#   make yjs-demo-bundle  rebuild src/collabgate/http/static/demo.js from http/demo/demo.js
#                         (esbuild); commit the result: serving /demo needs no Node
#   make bench-yjs        bench/yjs_relay: /yjs against y-websocket's server (in memory and on
#                         y-leveldb) and pycrdt-websocket, all installed only inside
#                         bench/yjs_relay (BENCH_YJS_ARGS=...)
#
# Nothing here downloads a browser: playwright-core drives /usr/bin/chromium.
.PHONY: yjs-setup yjs-chromium yjs-test yjs-demo-bundle bench-yjs

INTEROP_DIR := tests/interop
# npm writes node_modules/.package-lock.json on every install: the stamp of an up-to-date tree.
INTEROP_STAMP := $(INTEROP_DIR)/node_modules/.package-lock.json
BENCH_YJS_DIR := bench/yjs_relay
BENCH_YJS_STAMPS := $(BENCH_YJS_DIR)/node_modules/.package-lock.json $(BENCH_YJS_DIR)/.venv/.stamp
YJS_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
NPM_CI := npm ci --ignore-scripts --no-audit --no-fund

test-setup: $(INTEROP_STAMP)
test-setup: yjs-chromium

yjs-setup: $(INTEROP_STAMP) yjs-chromium

$(INTEROP_STAMP): $(INTEROP_DIR)/package.json $(INTEROP_DIR)/package-lock.json
	cd $(INTEROP_DIR) && $(NPM_CI)
	touch $@

yjs-chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "yjs-chromium: installing Debian's chromium for the Playwright test"; \
	  $(YJS_SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(YJS_SUDO) apt-get install -y -qq --no-install-recommends chromium; \
	fi

yjs-test: $(STAMP) yjs-setup
	$(PY) -m pytest tests/interop tests/browser tests/e2e/test_yjs_endpoint.py tests/unit/test_yjs_codec.py $(PYTEST_ARGS)

yjs-demo-bundle: $(INTEROP_STAMP)
	cd $(INTEROP_DIR) && node build-demo.mjs

$(BENCH_YJS_DIR)/node_modules/.package-lock.json: $(BENCH_YJS_DIR)/package.json $(BENCH_YJS_DIR)/package-lock.json
	cd $(BENCH_YJS_DIR) && $(NPM_CI)
	touch $@

$(BENCH_YJS_DIR)/.venv/.stamp: $(BENCH_YJS_DIR)/requirements.txt
	test -x $(BENCH_YJS_DIR)/.venv/bin/python || $(PYTHON) -m venv $(BENCH_YJS_DIR)/.venv
	$(BENCH_YJS_DIR)/.venv/bin/python -m pip install --quiet -r $(BENCH_YJS_DIR)/requirements.txt
	touch $@

bench-yjs: $(STAMP) $(BENCH_YJS_STAMPS)
	$(PY) $(BENCH_YJS_DIR)/run.py $(BENCH_YJS_ARGS)
