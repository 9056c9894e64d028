# User-code image of the AWS deployment: the webserver, the daemon and every run task
# (infra/terraform/modules/orchestration) run this one image.
#
#   docker build --platform linux/amd64 -t <ecr-repo>:<git-sha> .
#
# Installs exactly uv.lock (`uv sync --frozen`) with the `aws` extra (dagster-aws,
# dagster-postgres), without the dev group and without the `local` extra (moto: the image has
# no local stack). The code location is the production definitions
# (infra/dagster/workspace.yaml -> leanops_dagster.definitions).
FROM python:3.11-slim-bookworm AS build

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv==0.13.9"

WORKDIR /app
# Dependencies first (cached layer while only the code changes).
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --extra aws --no-dev --no-install-project

COPY leanops_dagster ./leanops_dagster
COPY ingestion_lambdas ./ingestion_lambdas
COPY infra/dagster/workspace.yaml ./workspace.yaml
RUN uv sync --frozen --extra aws --no-dev --no-editable


FROM python:3.11-slim-bookworm

# MIMALLOC_PURGE_DECOMMITS=0: Arrow's allocator (mimalloc) hands freed memory back with
# MADV_FREE instead of decommitting it, so a run does not pay the kernel for re-faulting the
# same gigabytes on every batch (benchmarks/README.md: -1 s of system time per 1M rows).
ENV PATH=/app/.venv/bin:$PATH \
    MIMALLOC_PURGE_DECOMMITS=0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    LEANOPS_HOME=/tmp/leanops

RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin dagster \
    && mkdir -p /opt/dagster/dagster_home/storage \
    && chown -R dagster /opt/dagster/dagster_home/storage

WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/workspace.yaml /app/workspace.yaml
COPY infra/dagster/dagster.yaml /opt/dagster/dagster_home/dagster.yaml

USER 10001
EXPOSE 3000
# The task definitions set the command (webserver, daemon); runs get theirs from EcsRunLauncher.
CMD ["dagster-webserver", "--host", "0.0.0.0", "--port", "3000", "--workspace", "/app/workspace.yaml"]
