# syntax=docker/dockerfile:1
# The FLOps stack (manager, observer host, builder tasks) against an external MQTT broker.
#
#   docker build -t flops-mqtt:0.1.0 .
#   docker run --rm -e FLOPS_BROKER_HOST=<broker> -e FLOPS_BROKER_PORT=1883 \
#       -v flops-data:/data flops-mqtt:0.1.0
#
# compose.yaml runs it beside mosquitto and MongoDB; docs/deployment.md explains the picture.
# The same image runs one observer or builder as a container of its own with the command
# `flops service run` and the FLOPS_SERVICE_* variables an orchestrator sets (the Oakestra
# runtime's service SLA does; docs/oakestra.md).
# Both stages use the same Debian release as the machines the tests run on (bookworm).

# ------------------------------------------------------------------ build: wheels only
FROM python:3.12-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# .dockerignore keeps .venv, .git, tests and caches out of this context.
COPY . .
# The project's wheel and every runtime dependency's wheel (the `mongo` extra for the
# MongoDB backend, `oakestra` for runtime = "oakestra"); no dev extra. Setuptools comes in
# pip's isolated build environment only.
RUN pip wheel --wheel-dir /wheels ".[mongo,oakestra]"

# ------------------------------------------------------------------ runtime
FROM python:3.12-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# git: the builder resolves a repository's HEAD with `git ls-remote`. Debian's bookworm
# versions, not pinned: a pin breaks the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 flops \
    && useradd --system --uid 10001 --gid flops --create-home --home-dir /home/flops \
        --shell /usr/sbin/nologin flops \
    && mkdir /data \
    && chown flops:flops /data

# Install from the build stage's wheels only: no compiler, no index, no wheel left behind.
# The versions are the ones resolved in the build stage.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "flops-mqtt[mongo,oakestra]"

# Settings are FLOPS_<NAME> variables (core/settings.py); override them with -e.
ENV FLOPS_DATA_DIR=/data \
    FLOPS_BROKER_HOST=mosquitto \
    FLOPS_BROKER_PORT=1883
VOLUME ["/data"]

USER 10001:10001
WORKDIR /home/flops

# The stack writes $FLOPS_DATA_DIR/stack.json once it is connected and removes it on exit.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "test -f \"$FLOPS_DATA_DIR/stack.json\""]

# SIGTERM (docker stop) drains the stack and exits 0. A card left by a killed container
# names a pid that is alive again in the new one (often pid 1, this process itself), so
# `flops up` would refuse to start: one stack owns this data dir, so remove it first.
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "rm -f \"$FLOPS_DATA_DIR/stack.json\" && exec flops up --broker external"]
