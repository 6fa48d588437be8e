"""Serving the ranked list: the database it is published to (``db``) and its runs (``runs``).

Nothing is imported here, so ``import retain.serve`` stays free of SQLAlchemy until a module
of the package is used.
"""
