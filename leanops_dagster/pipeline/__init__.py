"""Layer runs (RAW -> Standardized -> Curated) as plain functions: I/O around pure transforms.

Dagster assets, the CLI and the benchmarks call these; they know nothing of Dagster.
"""
