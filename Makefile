# Two commands matter: `make serve` (set up and run the service) and `make test` (set up and run
# every test). Both create .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SERVE_INSTALLED := $(VENV)/.installed-serve

.PHONY: serve test lint typecheck proto bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,sim,train]'
	touch $(INSTALLED)

# Serving needs only the package itself: no TensorFlow, simulator or test tools.
$(SERVE_INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $(SERVE_INSTALLED)

# Flags go through ARGS (make serve ARGS="--port 6000 --policy thompson"); PRICEBANDIT_* variables work too.
serve: $(SERVE_INSTALLED)
	$(BIN)/pricebandit-server $(ARGS)

test: $(INSTALLED) lint
	$(BIN)/python -m pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .

bench: $(INSTALLED)
	$(BIN)/python -m bench

typecheck: $(INSTALLED)
	$(BIN)/mypy learner server bench simulator evaluation

proto: $(INSTALLED)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto \
		--grpc_python_out=proto proto/pricing/v1/pricing.proto

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
