# Every target installs exactly the locked dependencies (uv.lock) before it runs.
UV_VERSION := 0.13.9
UV := python3 -m uv

.PHONY: setup demo test dev lint bench

setup:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --all-extras

demo: setup  ## the main job: the local demo on embedded defaults
	$(UV) run leanops demo

test: setup  ## the whole test suite: lint, static checks of Terraform and code, pytest
	$(UV) run ruff check .
	$(UV) run pytest

dev: setup  ## the Dagster UI on the local stack
	$(UV) run leanops dev

lint: setup
	$(UV) run ruff check . && $(UV) run ruff format --check .

bench: setup
	$(UV) run python benchmarks/ingest.py
	$(UV) run python benchmarks/process.py
