# Set-up and the two entry points: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

# The item page's IIIF viewer: OpenSeadragon (BSD-3-Clause) from the npm registry, unpacked into
# the web app's static files (npm checks the tarball's integrity); never fetched from a CDN.
OSD_VERSION := 6.1.1
VIEWER := archive_db/web/static/vendor/openseadragon/openseadragon.min.js

.PHONY: demo test venv viewer bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	# iiif-prezi3 validates the IIIF manifests in the tests; it pins Pillow <= 12.0 for helpers the
	# tests do not use, so it comes without its dependencies (pydantic and requests are here).
	$(PIP) --no-deps 'iiif-prezi3>=3.1'
	touch $(STAMP)

$(VIEWER):
	rm -rf build/osd && mkdir -p build/osd archive_db/web/static/vendor
	cd build/osd && npm pack --silent openseadragon@$(OSD_VERSION) >/dev/null && tar xzf openseadragon-$(OSD_VERSION).tgz
	rm -rf archive_db/web/static/vendor/openseadragon
	mkdir -p archive_db/web/static/vendor/openseadragon
	cp -r build/osd/package/build/openseadragon/openseadragon.min.js build/osd/package/build/openseadragon/images \
		build/osd/package/LICENSE.txt archive_db/web/static/vendor/openseadragon/
	rm -rf build/osd

viewer: $(VIEWER)

venv: $(STAMP) $(VIEWER)

demo: $(STAMP) $(VIEWER)
	$(BIN)/python -m flows.cli.demo

test: $(STAMP) $(VIEWER)
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
	$(BIN)/python bench/upscale_quality.py
	$(BIN)/python bench/style_quality.py
	$(BIN)/python bench/style_losses.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/catalogue.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/export_bag.py

clean:
	rm -rf $(VENV) demo-archive archive.db archive.db-* archive-store archive_db/web/static/vendor
