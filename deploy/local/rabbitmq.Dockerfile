# Local stand-in for rabbitmq:3.13-management: Debian bookworm's RabbitMQ 3.10 (the version the
# Celery tests run against). It reads RABBITMQ_DEFAULT_USER/RABBITMQ_DEFAULT_PASS itself (3.9+).
# Base: a `debootstrap --variant=minbase bookworm` tree imported with `docker import`.
ARG BASE=hyperion-local/bookworm:base
FROM ${BASE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/rabbitmq /var/log/rabbitmq \
    && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
# Logs to the container's output, as the official image does.
ENV RABBITMQ_LOGS=- HOME=/var/lib/rabbitmq
USER rabbitmq
EXPOSE 5672
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
