# Every target installs exactly the locked dependencies (uv.lock) before it runs.
UV_VERSION := 0.13.9
UV := python3 -m uv

.PHONY: setup spark-jars demo test dev lint bench

# Debian packages of the local Spark engine (engines/spark/jars.py): jarjar relocates Jackson
# for the Iceberg runtime, the JDBC drivers serve Iceberg's JDBC catalog.
SPARK_DEBS := libjarjar-java libxerial-sqlite-jdbc-java libpostgresql-jdbc-java

# Bytecode is compiled at install time (as the Dockerfile does): with PYTHONDONTWRITEBYTECODE
# set (this machine kind sets it) every process would otherwise compile Dagster, SQLAlchemy and
# the rest from source on each import: ~20 s per fresh interpreter under load instead of ~3 s,
# paid by every run worker, code server, CLI call and test subprocess. Later syncs reuse it.
setup:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --all-extras --compile-bytecode
	@$(UV) run python -m compileall -q -j 0 leanops_dagster ingestion_lambdas benchmarks tests >/dev/null
	@$(MAKE) --no-print-directory spark-jars

spark-jars:  ## local Spark engine: Debian jars (as root, when missing) + the relocated Jackson jar
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! dpkg -s $(SPARK_DEBS) >/dev/null 2>&1; then \
		apt-get install -y -qq --no-install-recommends $(SPARK_DEBS) >/dev/null \
		|| { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(SPARK_DEBS) >/dev/null; }; \
	fi
	@$(UV) run leanops spark-jars >/dev/null \
		|| echo "note: the local Spark engine is unavailable (above); the Arrow engine does not need it"

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
