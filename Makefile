# Two commands for a newcomer on a fresh Debian machine with Python 3.11 and pip:
#   make demo   - simulate the demo cohort and run the whole study on it (results/)
#   make test-fast - the fast tests (minutes; no end-to-end runs, no Slurm)
#   make test   - the full test suite (slow: end-to-end runs, registration, training)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: demo test test-fast lint report reproducibility slurm-profile clean

$(BIN)/snakemake: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Snakemake 9 re-selects jobs every <timespan> of --max-jobs-per-timespan (default 100/1s),
# sizing every input of every ready job each time: with the study's training and prediction
# jobs waiting on all patients' folders that cost its main process 11 of the demo's CPU-minutes.
# The same rate over 10 s re-selects ten times less often (and lingers up to 10 s at the end).
LOCAL_FLAGS := --max-jobs-per-timespan 1000/10s

# The study on the demo cohort, then its HTML report (results/report.html).
demo: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES) $(LOCAL_FLAGS) --configfile config/config.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --report results/report.html

test: $(BIN)/snakemake
	$(BIN)/pytest

test-fast: $(BIN)/snakemake
	$(BIN)/pytest -m "not slow and not slurm"

lint: $(BIN)/snakemake
	$(BIN)/snakemake --lint --configfile config/ci.yaml
	$(BIN)/snakefmt --check Snakefile workflow/rules/

# The HTML report of the demo study again (make demo writes it too): open results/report.html.
report: $(BIN)/snakemake
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml --report results/report.html

# Two runs of the CI study from scratch, in two fresh folders: the result tables must be
# byte-identical (the same config and seed give the same tables on CPU).
reproducibility: $(BIN)/snakemake
	rm -rf .repro && mkdir -p .repro
	for run in a b; do \
	  mkdir -p .repro/$$run && cp -rL Snakefile workflow config envs .repro/$$run/ && \
	  (cd .repro/$$run && ../../$(BIN)/snakemake --cores $(CORES) --configfile config/ci.yaml --quiet) || exit 1; \
	done
	for f in .repro/a/results/tables/*.tsv .repro/a/results/metrics/*.tsv .repro/a/results/cohort/*.tsv; do \
	  cmp "$$f" ".repro/b/$${f#.repro/a/}" || exit 1; \
	done
	@echo "reproducible: every results table is byte-identical across two runs"

clean:
	rm -rf results benchmarks resources/demo_bids resources/ci_bids .snakemake

# Make `snakemake --profile slurm` work from anywhere (Snakemake 9 does not look in ./profiles/).
slurm-profile: $(BIN)/snakemake
	mkdir -p $(HOME)/.config/snakemake
	ln -sfn $(CURDIR)/profiles/slurm $(HOME)/.config/snakemake/slurm
