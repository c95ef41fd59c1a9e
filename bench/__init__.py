"""Benchmarks and the accuracy study: they print figures and never assert on time."""
