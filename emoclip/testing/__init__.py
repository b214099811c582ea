"""Helpers for tests, benchmarks and demo scripts; nothing here is imported by the library itself."""
