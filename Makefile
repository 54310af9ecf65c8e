# Hitchhiker — every target sets itself up: a .venv is created and filled on first use.
#   make lab    open JupyterLab on notebooks/ (interactive)
#   make tour   run every notebook in order, headless, at the preset that fits this machine
#   make site   make tour, then the course as a static web site in runs/site/ (MkDocs: every
#               notebook with its outputs, plots and widget snapshots); PRESET=smoke for a quick one
#   make test   ruff + pytest + nbval (smoke mode) + stripped-notebook check + browser e2e
#               (JupyterLab, then Colab's widget stack: e2e-colab) + the Colab set-up rehearsal
#   make e2e    only the browser end-to-end test (installs Debian's chromium when missing)
#   make e2e-colab        notebooks 00 and 04 in Colab's widget stack (ipywidgets 7.7, classic
#                         Notebook 6.5), buttons only, in a real browser; its environment is
#                         .venv-colab (make colab-venv), with Colab's versions pinned
#   make colab-rehearsal  the notebooks' set-up cell run as on Colab, in a fresh pinned venv
#   make bench  the benchmark table (python -m hitchhiker.bench)
#
# TORCH picks the PyTorch wheel installed before the package (default: the 2.13.0 release; on a
# CPU-only Linux box point pip at a CPU build, e.g. make test TORCH_ARGS="--index-url <cpu index>").

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
TORCH_ARGS ?=
# make tour / make site: the preset the notebooks run at (empty: what fits this machine)
PRESET ?=
STAMP  := $(VENV)/.installed
# Notebook and unit tests run in smoke mode: tiny models, seconds each.
SMOKE  := HITCHHIKER_SMOKE=1

# The Colab environment: Colab's preinstalled versions (tests/colab/colab-pins.txt) and the course.
# torch is the machine's CPU build (see the pins file); COLAB_TORCH overrides it.
COLAB_VENV  ?= .venv-colab
COLAB_BIN   := $(COLAB_VENV)/bin
COLAB_PINS  := tests/colab/colab-pins.txt
COLAB_TORCH ?= $(TORCH)
COLAB_STAMP := $(COLAB_VENV)/.installed

.PHONY: venv lab tour site test lint unit nbval e2e bench strip clean chromium colab-venv e2e-colab colab-rehearsal

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install $(TORCH_ARGS) "$(TORCH)"
	$(BIN)/python -m pip install -e ".[lab,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

lab: venv
	$(BIN)/jupyter lab notebooks/

tour: venv
	$(BIN)/python -m hitchhiker.tour $(if $(PRESET),--preset $(PRESET))

site: venv
	$(BIN)/python -m hitchhiker.site --tour $(if $(PRESET),--preset $(PRESET))

bench: venv
	$(BIN)/python -m hitchhiker.bench

test: venv lint unit nbval e2e e2e-colab colab-rehearsal

lint: venv
	$(BIN)/ruff check hitchhiker tests
	$(BIN)/ruff format --check hitchhiker tests

unit: venv
	$(SMOKE) $(BIN)/python -m pytest -m "not e2e and not e2e_colab and not colab_rehearsal" tests

nbval: venv
	$(SMOKE) $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider notebooks

chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

e2e: venv chromium
	$(SMOKE) $(BIN)/python -m pytest -m e2e tests

colab-venv: $(COLAB_STAMP)

$(COLAB_STAMP): pyproject.toml $(COLAB_PINS)
	test -x $(COLAB_BIN)/python || $(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_BIN)/python -c "import torch" 2>/dev/null || $(COLAB_BIN)/python -m pip install -q $(TORCH_ARGS) "$(COLAB_TORCH)"
	$(COLAB_BIN)/python -m pip install -q -r $(COLAB_PINS) pytest
	$(COLAB_BIN)/python -m pip install -q -c $(COLAB_PINS) -e .
	touch $@

# The widget unit tests under ipywidgets 7.7 first (seconds), then the browser.
e2e-colab: venv colab-venv chromium
	$(SMOKE) $(COLAB_BIN)/python -m pytest -q -p no:cacheprovider tests/test_play.py tests/test_dream_play.py
	$(SMOKE) HITCHHIKER_COLAB_VENV=$(COLAB_VENV) $(BIN)/python -m pytest -m e2e_colab tests

colab-rehearsal: venv
	$(SMOKE) COLAB_TORCH="$(COLAB_TORCH)" TORCH_ARGS="$(TORCH_ARGS)" $(BIN)/python -m pytest -m colab_rehearsal tests

strip: venv
	$(BIN)/nbstripout --keep-id --extra-keys "metadata.kernelspec metadata.language_info" notebooks/*.ipynb

clean:
	rm -rf $(VENV) $(COLAB_VENV) runs .pytest_cache .ruff_cache
