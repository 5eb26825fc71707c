"""``hyperion serve``: the live index over HTTP, for RAG applications that do not import us.

``queries`` reads and checks a request and shapes the answer (no web framework, no Milvus);
``live_index`` holds the model and the index connection between requests; ``app`` is the thin
HTTP layer (routes, bearer token, Prometheus metrics, the OpenAPI schema).
"""
