# Set-up and the two entry points: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test venv bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	# iiif-prezi3 validates the IIIF manifests in the tests; it pins Pillow <= 12.0 for helpers the
	# tests do not use, so it comes without its dependencies (pydantic and requests are here).
	$(PIP) --no-deps 'iiif-prezi3>=3.1'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m flows.cli.demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Each benchmark prints a ratio against a baseline measured in the same run; results of the
# shipped model's runs are kept in bench/results/.
bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/restore_quality.py
	$(BIN)/python bench/real_scans.py
	$(BIN)/python bench/style_quality.py
	$(BIN)/python bench/style_losses.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/catalogue.py
	$(BIN)/python bench/search.py

clean:
	rm -rf $(VENV) demo-archive archive.db archive.db-* archive-store
