"""Thin edges: CLI, HTTP probes, the worker, and the one composition root."""
