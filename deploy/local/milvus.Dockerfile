# Local stand-in for the Milvus standalone service: the milvus-lite server (the same gRPC API the
# pipeline uses, one process, data in one folder): Milvus standalone needs etcd and MinIO, which do
# not start here (see README, Production).
ARG PYTHON_IMAGE=hyperion-local/python:3.11
FROM ${PYTHON_IMAGE}
# The server imports pymilvus for its gRPC stubs: the versions the pipeline itself was tested with.
RUN pip install --no-cache-dir milvus-lite==3.2.2 pymilvus==3.0.2 && mkdir -p /var/lib/milvus
EXPOSE 19530
CMD ["milvus-lite", "server", "--data-dir", "/var/lib/milvus", "--host", "0.0.0.0", "--port", "19530"]
