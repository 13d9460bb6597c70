"""Beside the scoring path: throughput benchmarks, the TFKT V2 reference, the machine description and the result files."""
