"""Alembic environment: upgrades run on the connection ``retain.serve.db`` hands over.

There is no ``alembic.ini``: ``open_database`` builds the config (script location = this
folder) and puts its open connection in ``config.attributes["connection"]``. To write a new
migration, copy ``versions/0001_initial.py``'s shape (a module with ``revision``,
``down_revision``, ``upgrade`` and ``downgrade``) under the next number.
"""

from __future__ import annotations

from alembic import context

from retain.serve.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("retain's migrations run through retain.serve.db.open_database(url)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
