"""Benchmarks: figures printed side by side in one run, never pass/fail timings (machines here are shared)."""
