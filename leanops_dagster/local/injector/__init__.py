"""Deterministic test data for the local stack: generators, scenario configs, the demo mix."""
