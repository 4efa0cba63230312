# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nas search --name demo --evaluator enas --strategy reinforce --dataset digits --retrain-top 1
	$(BIN)/nas export best -o best_architecture.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q --durations=15

bench: $(STAMP)
	for script in bench/[a-z]*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .nas .pytest_cache .ruff_cache
