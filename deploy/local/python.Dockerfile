# Local stand-in for python:3.11-slim-bookworm, built where Docker Hub cannot be reached: Debian
# bookworm's own Python 3.11 in a virtual environment (bookworm's pip refuses system-wide installs),
# with the CPU torch wheel that deploy/smoke.sh put in the build context, so the app image's
# `pip install torch==...` finds it already satisfied, and this machine's CA bundle (trust/), so
# pip reaches PyPI through whatever TLS proxy this machine trusts. Base: a `debootstrap
# --variant=minbase bookworm` tree imported with `docker import` (deploy/smoke.sh).
ARG BASE=hyperion-local/bookworm:base
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
COPY trust/ /usr/local/share/ca-certificates/
RUN update-ca-certificates > /dev/null
ENV PATH=/opt/venv/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY wheels/ /tmp/wheels/
RUN pip install --no-cache-dir /tmp/wheels/torch-*.whl && rm -rf /tmp/wheels
