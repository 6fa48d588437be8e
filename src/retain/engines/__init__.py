"""Other places to run the scoring path than this process: ``spark`` (``retain score --engine spark``).

Nothing heavy is imported here: pyspark is imported inside :mod:`retain.engines.spark`'s functions.
"""
