"""Dagster instance plug-ins, named in dagster.yaml."""
