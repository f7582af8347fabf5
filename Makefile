# Two commands on a fresh machine: `make demo` (the main job, embedded, no server) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test services serve worker clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/astroloc demo

# Tests talk to real PostgreSQL+PostGIS and Redis on 127.0.0.1: `services` installs/starts them.
test: $(STAMP) services
	$(PY) -m pytest $(PYTEST_ARGS)

services:
	bash scripts/dev_services.sh

serve: $(STAMP)
	$(VENV)/bin/astroloc serve

clean:
	rm -rf $(VENV) var .pytest_cache
