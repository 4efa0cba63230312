# syntax=docker/dockerfile:1
# One image for the API (`nas serve`), the Ray head and the Ray workers (docs/deploy.md).
#
#   CPU (the default: PyTorch's CPU-only wheels, no CUDA libraries):
#     docker build -t nas-service:cpu .
#   GPU nodes (a CUDA base image and PyTorch's CUDA wheels):
#     docker build -t nas-service:cuda \
#       --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#       --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#
# Every node of one Ray cluster, and the API (a Ray driver), must run the same build: Ray
# refuses a node or driver with another Python or Ray version.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NAS_HOME=/var/lib/nas \
    NAS_DATA_DIR=/var/lib/nas/data \
    RAY_USAGE_STATS_ENABLED=0

# A CUDA base image (Ubuntu) has no Python: install the distribution's (3.11 or newer).
RUN if ! python3 -c 'import sys, venv; assert sys.version_info >= (3, 11)' 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv \
    && pip install --upgrade pip

# PyTorch first, from its own index (CPU-only wheels by default), in a layer of its own:
# installing the package below keeps it, since its requirement (torch>=2.4) is met.
RUN pip install --index-url "${TORCH_INDEX}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

WORKDIR /opt/nas-service
COPY pyproject.toml README.md ./
COPY searchspace searchspace
COPY nas nas
COPY workers workers
COPY server server
RUN pip install . && python -c "import nas.cli, server.app, workers.search_actors"

# An unprivileged user owns NAS_HOME, so a named volume mounted there starts owned by it.
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin nas \
    && mkdir -p /var/lib/nas/data \
    && chown -R nas:nas /var/lib/nas
USER nas
WORKDIR /home/nas
VOLUME ["/var/lib/nas"]
EXPOSE 8000

# Exec form: SIGTERM reaches the process itself (docker-compose.yml adds `init: true`).
CMD ["nas", "serve", "--host", "0.0.0.0", "--no-migrate"]
