"""The quarantine (dead-letter queue) for documents that cannot be indexed."""
