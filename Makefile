# Two commands on a fresh clone: `make check` (the checker on the bundled examples) and `make test`.
# Both build .venv on first use and reuse it afterwards (rebuilt when pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= test,torch,plot,dev,dask,notebook
PROFILE ?= ci
# pytest arguments appended by `make test`, e.g. PYTEST_ARGS='-k conv'
PYTEST_ARGS ?=
JOBS ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: check test bench lint clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)" -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

# make check                          -> every bundled example gets its expected verdict (a self-test)
# make check LAYER=file.py:Name KIND=conv [PRESET=seed] [CHECK_ARGS=...] -> check your own layer
check: $(STAMP)
ifdef LAYER
	$(BIN)/python -m checks check $(LAYER) $(if $(KIND),--kind $(KIND)) $(if $(PRESET),--preset $(PRESET)) $(CHECK_ARGS)
else
	$(BIN)/python -m checks selftest $(CHECK_ARGS)
endif

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --hypothesis-profile=$(PROFILE) $(PYTEST_ARGS)

# make bench [BENCH_ARGS=--quick] [USER_BENCH_ARGS='--repeat 3 --strict'] -> our layers against torch, then
# the whole `cnn-gradcheck check` commands a student types, in units of `python -c "import torch"`
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.user_bench $(USER_BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check cnn checks tests benchmarks examples conftest.py
	$(BIN)/ruff format --check cnn checks tests benchmarks examples conftest.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
