"""Benchmarks (quality now; serving and load later)."""
