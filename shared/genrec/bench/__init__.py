"""Benchmarks: offline quality, the model server alone, the running system under load."""
