# Two commands on a fresh machine: `make demo` (the main job, embedded, no server) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The web app served at / (frontend/): built with npm from its lock file, output in frontend/dist.
WEB_STAMP   := frontend/dist/index.html
WEB_SOURCES := frontend/package.json frontend/package-lock.json frontend/build.mjs frontend/index.html \
               $(wildcard frontend/src/*)

.PHONY: install web demo test services serve worker clean

install: $(STAMP) $(WEB_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

web: $(WEB_STAMP)

$(WEB_STAMP): $(WEB_SOURCES)
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

# `make demo DEMO_ARGS=--exit` stops after the photos instead of serving the map until Ctrl-C.
demo: install
	$(VENV)/bin/astroloc demo $(DEMO_ARGS)

# Tests talk to real PostgreSQL+PostGIS and Redis on 127.0.0.1 and drive Debian's chromium:
# `services` installs/starts them.
test: install services
	$(PY) -m pytest $(PYTEST_ARGS)

services:
	bash scripts/dev_services.sh

serve: install
	$(VENV)/bin/astroloc serve

clean:
	rm -rf $(VENV) var .pytest_cache frontend/node_modules frontend/dist
