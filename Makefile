# Two commands for a newcomer on a fresh Debian machine with Python 3.11 and pip:
#   make demo   - simulate the demo cohort and run the whole study on it (results/)
#   make test   - run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: demo test test-fast lint report clean

$(BIN)/snakemake: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml

test: $(BIN)/snakemake
	$(BIN)/pytest

test-fast: $(BIN)/snakemake
	$(BIN)/pytest -m "not slow and not slurm"

lint: $(BIN)/snakemake
	$(BIN)/snakemake --lint --configfile config/ci.yaml

report: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --report results/report.html

clean:
	rm -rf results resources/demo_bids resources/ci_bids .snakemake
