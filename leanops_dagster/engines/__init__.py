"""Engines of the Standardized and Curated runs (``arrow``: ``pipeline/``; ``spark``: here)."""
