"""Benchmarks of the product's own stages; each module runs as a script."""
