"""Benchmarks: what users feel (ack latency, start-up, memory) and what seven years of
audit cost. Run `python -m bench` (all) or `python -m bench ack` (one); see README.md.

They never run in the test suite; `tests/unit/test_bench_smoke.py` only proves the code works.
"""
