# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1
# Run a second time on oneDNN's AVX2 kernels with one thread: training must not depend on the
# CPU model (nas/memory_format.py).
AVX2_TESTS := tests/test_train.py tests/test_search.py tests/test_enas.py tests/test_supernet.py \
	tests/test_concurrent_search.py tests/test_transfer.py

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
	$(BIN)/lint-imports
	$(BIN)/pytest -q --durations=15
	NAS_THREADS=1 OMP_NUM_THREADS=1 ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/pytest -q $(AVX2_TESTS)

bench: $(STAMP)
	for script in bench/[a-z]*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .nas .pytest_cache .ruff_cache
