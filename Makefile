# The front door. `make up` brings up the whole stack locally; `make test` is what CI runs.
#
#   make up       venv + deps (when pyproject changed) + stubs, then admin user, sample data,
#                 services and the Envoy REST gateway (python -m devstack up)
#   make down     stop exactly what `make up` started (pid files in $ZQ_DATA_DIR/run)
#   make status   state and health of every process
#   make test     pytest over tests/ (fails if nothing is collected); npm ci for the web client test
#   make proto    regenerate services/stubs, deploy/envoy.pb, deploy/openapi.json and
#                 deploy/request_types.lua from protos/
#   make web      npm ci (when package-lock.json changed) + the console and report builds
#                 (when web/ changed): web/dist/console (served by Envoy), backtest_report/assets
#   make lint     ruff + buf lint
#   make bench    run bench/*.py
#   make clean    remove generated files and caches (never $ZQ_DATA_DIR: it holds your data)
#
# Every setting is an environment variable (ZQ_DATA_DIR, ZQ_*_ADDR, ZQ_GATEWAY_PORT, ...), so a
# second stack is `ZQ_DATA_DIR=var2 ZQ_GATEWAY_PORT=8081 ... make up`.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# pip install runs only when pyproject.toml or setup.py is newer than this stamp.
INSTALL_STAMP := $(VENV)/.zquant-installed
# The zquant web client drop-in test's node packages (pinned by its package-lock.json).
WEB_CLIENT_TEST := tests/zquant_web_client
NODE_STAMP := $(WEB_CLIENT_TEST)/node_modules/.zquant-installed
PYTEST_ARGS ?=
# npm ci runs only when package-lock.json is newer than this stamp; the build only when a file
# of web/ (sources, config, lock) is newer than the build stamp.
NPM ?= npm
WEB_DEPS_STAMP := web/node_modules/.zquant-npm-ci
WEB_BUILD_STAMP := web/dist/.zquant-built
WEB_SOURCES := $(shell find web/src -type f 2>/dev/null) web/package.json web/package-lock.json \
	web/index.html web/tsconfig.json web/vite.config.ts web/vite.report.config.ts

# Before `pip install -e .` maps the generated `zquant` package these make the stubs and the
# repo importable; afterwards they point at the same directories and change nothing.
export PYTHONPATH := $(CURDIR)/services/stubs:$(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: up down status test proto lint bench clean install node-deps web

up: proto web
	$(PY) -m devstack up

down:
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else echo "no $(VENV): nothing was started"; fi

status:
	$(PY) -m devstack status

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALL_STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -e '.[dev]'
	touch $@

install: $(INSTALL_STAMP)

$(WEB_DEPS_STAMP): web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund
	touch $@

$(WEB_BUILD_STAMP): $(WEB_SOURCES) $(WEB_DEPS_STAMP)
	cd web && $(NPM) run build
	touch $@

web: $(WEB_BUILD_STAMP)

proto: $(INSTALL_STAMP)
	$(PY) protos/generate.py

$(NODE_STAMP): $(WEB_CLIENT_TEST)/package.json $(WEB_CLIENT_TEST)/package-lock.json
	cd $(WEB_CLIENT_TEST) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-deps: $(NODE_STAMP)

# pytest exits 5 when it collects nothing: a test run that ran no tests is a failure here.
test: proto $(NODE_STAMP) web
	@$(PY) -m pytest tests $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

# buf resolves imports only inside its module, and must work offline: lint a temporary copy of
# protos/ with google/api/*.proto from the googleapis-common-protos wheel next to it (buf.yaml
# ignores google/, and buf knows google/protobuf itself).
lint: $(INSTALL_STAMP)
	$(VENV)/bin/ruff check .
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	gapi=$$($(PY) -c 'import pathlib, google.api.http_pb2 as m; print(pathlib.Path(m.__file__).resolve().parents[2])'); \
	cp protos/buf.yaml "$$tmp/"; cp -R protos/zquant "$$tmp/"; \
	mkdir -p "$$tmp/google/api"; cp "$$gapi"/google/api/*.proto "$$tmp/google/api/"; \
	cd "$$tmp" && $(abspath $(VENV))/bin/buf lint && echo "buf lint: ok"

bench: proto web
	@set -e; found=0; for script in bench/*.py; do \
		[ -e "$$script" ] || continue; found=1; echo "== $$script"; $(PY) "$$script"; \
	done; \
	if [ $$found -eq 0 ]; then echo "make bench: no bench/*.py yet" >&2; exit 1; fi

clean:
	rm -rf services/stubs deploy/envoy.pb deploy/openapi.json deploy/request_types.lua build dist *.egg-info .pytest_cache .ruff_cache \
		$(WEB_CLIENT_TEST)/node_modules web/dist web/node_modules backtest_report/assets
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
