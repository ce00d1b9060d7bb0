# Every target installs what it needs first: uv (from PyPI, if it is not on PATH) into a private
# venv `.tools` (so a system Python that refuses pip installs, PEP 668, is never touched), then
# the locked environment in .venv. Nothing else has to be on the machine but Python 3.11.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
export UV_PYTHON_DOWNLOADS ?= never
DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup demo dev test lint format bench clean

setup:
	@test -x "$(UV)" || python3 -m venv .tools || { echo "make: cannot create .tools: install the venv module (Debian/Ubuntu: apt install python3-venv) or uv itself (https://docs.astral.sh/uv/)" >&2; exit 1; }
	@test -x "$(UV)" || .tools/bin/python -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen --quiet

# `helix demo` records its runs in the same DAGSTER_HOME that `make dev` serves.
demo: setup
	DAGSTER_HOME="$(DAGSTER_HOME)" $(UV) run helix demo

dev: setup
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp helix_pipelines/cli/dagster_instance.yaml "$(DAGSTER_HOME)/dagster.yaml"
	DAGSTER_HOME="$(DAGSTER_HOME)" $(UV) run dagster dev -w workspace.yaml

test: setup
	$(UV) run pytest

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports --no-cache

format: setup
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

bench: setup
	$(UV) run python -m bench.normalize_vs_orjson
	$(UV) run python -m bench.fetch_throughput
	$(UV) run python -m bench.loader_vs_psql_copy
	$(UV) run python -m bench.end_to_end
	$(UV) run python -m bench.analytics_throughput
	$(UV) run python -m bench.radar
	$(UV) run python -m bench.pictures
	$(UV) run python -m bench.planner
	$(UV) run python -m bench.shared_budget
	$(UV) run python -m bench.live_latency
	$(UV) run python -m bench.liquidation_events
	$(UV) run python -m bench.executor_latency
	$(UV) run python -m bench.timescale_compression
	$(UV) run python -m bench.full_sweep   # the real job: about 25 minutes

clean:
	rm -rf data .dagster_home
