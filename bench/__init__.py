"""Benchmarks: each bench_<part>.py offers run() -> dict; `python -m bench` merges them into results.json."""
