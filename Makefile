# Two set-up commands: `make run` and `make test`. Both create .venv when
# missing and reinstall only when pyproject.toml or constraints.txt change.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test test-all test-backends venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-tensorflow} $(PY) examples/hello_keras.py

test: $(STAMP)
	KERAS_BACKEND=tensorflow $(PY) -m pytest -m "not slow"

test-all: $(STAMP)
	KERAS_BACKEND=tensorflow $(PY) -m pytest

# The converter matrix and the examples on every Keras backend. Float64 cases
# are skipped, with the reason, where a backend does not compute float64
# exactly (parity.backends.float64_problems); tolerances stay as they are.
BACKEND_TESTS := tests/test_recurrent_matrix.py tests/test_cells.py \
	tests/test_plain_layers.py tests/test_round_trips.py tests/test_examples.py
BACKENDS_STAMP := $(VENV)/.installed-backends

$(BACKENDS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,backends]'
	touch $(BACKENDS_STAMP)

test-backends: $(BACKENDS_STAMP)
	for backend in tensorflow torch jax; do \
		echo "== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(PY) -m pytest -q -rs -m "not slow" $(BACKEND_TESTS) || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Benchmarks (issue 6): inference against PyTorch on every installed Keras
# backend, conversion cost, the main job's wall time; writes
# docs/performance.md. About 6-8 minutes on 2 cores; not part of `make test`.
.PHONY: bench
bench: $(STAMP)
	$(PY) -m benchmarks.run
