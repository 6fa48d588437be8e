"""Who may do what: roles, their permissions, and API tokens stored only as a hash.

A token is shown once, when it is created (``retain tokens create --role lead``); the database
keeps its sha256 and the role. A request carries it as ``Authorization: Bearer <token>``; the
API looks the hash up and checks the permission the endpoint needs against :data:`ROLES`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retain.serve.db import api_tokens, utcnow

#: What each role may do. Roles are data, not code paths: an endpoint names the permission it
#: needs and :func:`permits` answers from this table.
ROLES: dict[str, frozenset[str]] = {
    # Support staff who read the list: the ranked list, a customer's detail, the CSV export,
    # the published runs and the measured effect of outreach.
    "viewer": frozenset({"read_list", "read_customer", "export", "read_runs", "read_effect"}),
    # Leads work the list: everything a viewer does, and they record outreach.
    "lead": frozenset(
        {"read_list", "read_customer", "export", "read_runs", "read_effect", "log_outreach"}
    ),
    # Scoring jobs: publish a run and switch (or roll back) the current one; no customer data.
    "publisher": frozenset({"read_runs", "publish_runs"}),
    # Administrators: everything, including tokens.
    "admin": frozenset(
        {
            "read_list", "read_customer", "export", "read_runs", "read_effect", "log_outreach",
            "publish_runs", "manage_tokens",
        }
    ),
}

#: Every token starts with this, so a leaked one is recognisable (e.g. by secret scanners).
TOKEN_PREFIX = "rtn_"


class AuthError(PermissionError):
    """A request without a valid token (401) or with a role that may not do this (403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    """The holder of a valid token: its id, name and role (never the token itself)."""

    token_id: int
    name: str
    role: str
    created_at: datetime | None = None

    def may(self, permission: str) -> bool:
        return permits(self.role, permission)


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else a ValueError listing them."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role


def permits(role: str, permission: str) -> bool:
    """Whether ``role`` has ``permission`` (an unknown role has none)."""
    return permission in ROLES.get(role, frozenset())


def new_token() -> str:
    """A fresh random token (256 bits), to be shown once and never stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The sha256 (hex) stored in place of the token.

    A plain hash suffices (no salt or slow hash): tokens are 256-bit random strings, not
    passwords a person chose, so they cannot be guessed from their hash.
    """
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or AuthError 401."""
    if not header:
        raise AuthError("this needs a token: send 'Authorization: Bearer <token>' "
                        "(create one with `retain tokens create --role viewer`)", 401)
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'", 401)
    return value.strip()


# --- tokens in the database -----------------------------------------------------------------


def create_token(conn: Connection, name: str, role: str) -> str:
    """Store a new token's hash under ``name`` with ``role``; return the token (shown once).

    Raises ValueError for an unknown role or a name already used by a token not revoked.
    """
    check_role(role)
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name (who or what holds it, e.g. 'alice' or 'nightly-scoring')")
    taken = conn.execute(
        sa.select(api_tokens.c.id).where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
    ).first()
    if taken is not None:
        raise ValueError(f"a token named {name!r} exists; revoke it first (retain tokens revoke {name})")
    token = new_token()
    conn.execute(
        api_tokens.insert(),
        {"name": name, "role": role, "token_sha256": token_hash(token), "created_at": utcnow()},
    )
    return token


def principal_for(conn: Connection, token: str) -> Principal:
    """The holder of ``token``, or AuthError 401 (unknown or revoked)."""
    row = conn.execute(
        sa.select(api_tokens).where(api_tokens.c.token_sha256 == token_hash(token))
    ).mappings().first()
    if row is None or row["revoked_at"] is not None:
        raise AuthError("this token is not valid (unknown or revoked)", 401)
    return Principal(token_id=row["id"], name=row["name"], role=row["role"], created_at=row["created_at"])


def list_tokens(conn: Connection) -> list[dict[str, Any]]:
    """Every token's name, role and dates (never a hash or a token), newest first."""
    rows = conn.execute(sa.select(api_tokens).order_by(api_tokens.c.id.desc())).mappings()
    return [
        {"id": r["id"], "name": r["name"], "role": r["role"],
         "created_at": r["created_at"].isoformat() if r["created_at"] else None,
         "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None}
        for r in rows
    ]


def revoke_token(conn: Connection, name_or_id: str | int) -> int:
    """Revoke the live token(s) with this name or id; return how many were revoked."""
    where = api_tokens.c.name == str(name_or_id)
    if isinstance(name_or_id, int) or str(name_or_id).isdigit():
        where = sa.or_(where, api_tokens.c.id == int(name_or_id))
    result = conn.execute(
        api_tokens.update().where(where, api_tokens.c.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)
