"""Operator helpers (dev services, EOL ingestion, evaluation and screenshot scripts)."""
