# Local stand-in for prom/prometheus and prom/pushgateway: Debian bookworm's packages, one image;
# deploy/compose.local.yml picks the program with `entrypoint`.
ARG BASE=hyperion-local/bookworm:base
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus prometheus-pushgateway wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
