# mlcycle: the two commands a new user runs (see README.md).
#   make demo   set up .venv and run the end-to-end demo on the bundled example
#   make test   set up .venv and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# constraints.txt pins the versions CI runs with (a lock; pyproject.toml keeps only lower
# bounds). Without it pip backtracks for minutes between dvc-s3's aiobotocore pin and
# moto's botocore and can end on packages that no longer build. Refresh it with
# `make lock` after changing dependencies.
.PHONY: demo test lint check setup clean lock

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c constraints.txt
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlcycle demo

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile --durations=20

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^mlcycle' > constraints.txt
