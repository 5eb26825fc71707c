# Local stand-in for the Milvus standalone service: Milvus 2.3.5's own server binary, from the PyPI
# package `milvus` (standalone with embedded etcd and local storage in one folder). The production
# images (Milvus 2.6, etcd, MinIO) cannot be pulled here. 2.3.5 is the newest Milvus on PyPI: no
# BM25, so `retrieval: auto` makes dense collections on it (see README, Production).
ARG PYTHON_IMAGE=hyperion-local/python:3.11
FROM ${PYTHON_IMAGE}
RUN pip install --no-cache-dir milvus==2.3.5 && mkdir -p /var/lib/milvus
EXPOSE 19530 9091
# The launcher stops the binary on SIGINT; its proxy listens on every interface.
STOPSIGNAL SIGINT
CMD ["milvus-server", "--data", "/var/lib/milvus", "--proxy-port", "19530"]
