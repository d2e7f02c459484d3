"""Ingest engines: what moves pushed data into the landing log (log tailer, CDC reader, metrics agent)."""
