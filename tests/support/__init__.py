"""Helpers shared by tests and benchmarks: real servers started on loopback and always stopped."""
