"""The Milvus side: collection schema, writes, reconciliation and search."""
