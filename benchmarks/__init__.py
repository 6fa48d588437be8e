"""The benchmark harness of retain: fixed protocols from PROTOCOLS.md, one record per metric.

``harness`` holds the registry, the record format and the runner; each family module
(``text``, ``churn``) registers its benchmarks with ``@benchmark(...)``; ``run`` is the command.
Benchmarks are not tests: a test asserts behaviour, a benchmark records a figure.
"""
