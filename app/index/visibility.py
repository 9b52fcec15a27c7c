"""Which rows a principal may see, as a WHERE clause: the one place every index query takes it from.

Every table of the index carries the ``owner`` of its row; list, search, locate and header
lookups all add :func:`visible` for the tables they read, so a change of the visibility rule
(shares, groups) applies to every query at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

from app.auth.principals import Principal


def visible(principal: Principal, table: Any) -> list[ColumnElement[bool]]:
    """Conditions limiting ``table`` to the rows ``principal`` may see (none for an administrator)."""
    if principal.is_admin:
        return []
    condition: ColumnElement[bool] = table.c.owner == principal.name
    return [condition]
