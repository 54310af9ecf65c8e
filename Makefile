# Hitchhiker — every target sets itself up: a .venv is created and filled on first use.
#   make lab    open JupyterLab on notebooks/ (interactive)
#   make tour   run every notebook in order, headless, at the preset that fits this machine
#   make test   ruff + pytest + nbval (smoke mode) + stripped-notebook check + browser e2e
#   make e2e    only the browser end-to-end test (installs Debian's chromium when missing)
#   make bench  the benchmark table (python -m hitchhiker.bench)
#
# TORCH picks the PyTorch wheel installed before the package (default: the 2.13.0 release; on a
# CPU-only Linux box point pip at a CPU build, e.g. make test TORCH_ARGS="--index-url <cpu index>").

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
TORCH_ARGS ?=
STAMP  := $(VENV)/.installed
# Notebook and unit tests run in smoke mode: tiny models, seconds each.
SMOKE  := HITCHHIKER_SMOKE=1

.PHONY: venv lab tour test lint unit nbval e2e bench strip clean

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
	$(BIN)/python -m hitchhiker.tour

bench: venv
	$(BIN)/python -m hitchhiker.bench

test: venv lint unit nbval e2e

lint: venv
	$(BIN)/ruff check hitchhiker tests
	$(BIN)/ruff format --check hitchhiker tests

unit: venv
	$(SMOKE) $(BIN)/python -m pytest -m "not e2e" tests

nbval: venv
	$(SMOKE) $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider notebooks

e2e: venv
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	$(SMOKE) $(BIN)/python -m pytest -m e2e tests

strip: venv
	$(BIN)/nbstripout --keep-id --extra-keys "metadata.kernelspec metadata.language_info" notebooks/*.ipynb

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
