"""Pipeline metrics for Prometheus."""
