# syntax=docker/dockerfile:1.7
#
# One image for the whole Dagster deployment of Helix:
#   default CMD   the `helix_pipelines` code location (gRPC server on port 4000; runs launched by
#                 the DefaultRunLauncher execute in this container)
#   webserver     dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/app/deploy/workspace.yaml
#   daemon        dagster-daemon run -w /opt/dagster/app/deploy/workspace.yaml
# docker-compose.yml overrides the command for the last two.
#
# Build: docker build -t helix-pipelines .   (BuildKit, the default builder of current Docker)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------------------------------------------
# builder: resolve nothing, install exactly what uv.lock says.
FROM ${PYTHON_IMAGE} AS builder

COPY --from=uv /uv /uvx /bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv

WORKDIR /opt/dagster/app

# Dependencies first, from the lock file alone: this layer is rebuilt only when pyproject.toml or
# uv.lock change, not on every source edit.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --frozen --no-dev --no-install-project

# Then the project itself (filtered by .dockerignore). It stays an editable install rooted at
# /opt/dagster/app, so files next to the package (sql/ migrations, deploy/) are found at run time.
COPY . /opt/dagster/app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# ---------------------------------------------------------------------------------------------------
# runtime: the virtualenv and the source, no uv, no build caches, not root.
FROM ${PYTHON_IMAGE} AS runtime

ARG HELIX_UID=10001
ARG HELIX_GID=10001

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    HELIX_DATA_DIR=/data

RUN groupadd --system --gid "${HELIX_GID}" helix \
    && useradd --system --uid "${HELIX_UID}" --gid helix --home-dir /home/helix \
        --create-home --shell /usr/sbin/nologin helix \
    && mkdir -p /opt/dagster/dagster_home/storage /data \
    && chown -R helix:helix /opt/dagster/dagster_home /data

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/dagster/app /opt/dagster/app
# The production instance: PostgreSQL storage, run queue, the `coinglass` pool.
COPY --chown=helix:helix deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml

WORKDIR /opt/dagster/app
USER ${HELIX_UID}:${HELIX_GID}

# /data (HELIX_DATA_DIR: Parquet archive, quarantine) and $DAGSTER_HOME/storage (compute logs,
# shared by code location, webserver and daemon) are where docker-compose.yml mounts named volumes;
# a new named volume copies the ownership above, so the helix user can write to it.
EXPOSE 4000 3000

CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "helix_pipelines.definitions", "--location-name", "helix_pipelines"]
