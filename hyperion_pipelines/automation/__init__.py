"""Automation logic without Dagster: alert payloads and delivery, schedule arithmetic."""
