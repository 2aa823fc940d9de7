# The two commands the README leads with: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The lock files pin every dependency with its hashes; pyproject.toml keeps the ranges they come from.
LOCKS  := requirements.txt requirements-dev.txt
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCKS) | cksum | cut -d' ' -f1)
COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet \
	--custom-compile-command "make lock"

.PHONY: install lock test lint typecheck layers unit integration run bench chaos clean

install: $(STAMP)

$(STAMP):  # named by the checksum of pyproject.toml and the locks: a change to either reinstalls
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# After editing dependencies in pyproject.toml: refresh both locks (newest versions within the ranges).
lock: install
	$(COMPILE) --upgrade -o requirements.txt
	$(COMPILE) --upgrade --extra dev -o requirements-dev.txt
	@$(MAKE) --no-print-directory install

lint: install
	$(BIN)/ruff check domain application adapters entrypoints schemas tests bench examples
	$(BIN)/ruff format --check domain application adapters entrypoints schemas tests bench examples

typecheck: install
	$(BIN)/mypy domain application

layers: install
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest tests/unit -q

integration: install
	$(BIN)/pytest tests/integration -q

test: lint typecheck layers
	$(BIN)/pytest -q

run: install
	$(BIN)/python -m entrypoints.dev_run

bench: install
	$(BIN)/python bench/hot_path.py
	$(BIN)/python bench/end_to_end.py
	$(BIN)/python bench/partitions.py
	$(BIN)/python bench/plots.py

chaos: install
	CONNECTOR_TEST_CHAOS_TRIALS=20 CONNECTOR_TEST_CHAOS_EVENTS=20000 CONNECTOR_TEST_CHAOS_OUTAGE_S=30 CONNECTOR_TEST_CHAOS_FIRESTORE_OUTAGE_S=70 \
		CONNECTOR_TEST_CHAOS_RECORD=1 \
		$(BIN)/pytest -q tests/integration/test_reliability.py tests/integration/test_outage.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
