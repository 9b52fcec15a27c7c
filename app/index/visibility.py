"""Which rows a principal may see, as WHERE conditions for any level of the index.

List, search (QIDO-RS, C-FIND), locate and header lookups add :func:`visible` for each table they
read. The rule itself lives in :mod:`app.auth.policy` (the one place that says what a principal may
see); this module only picks the rule's form for the level a query reads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

from app.auth import policy
from app.auth.principals import Principal
from app.index.schema import instances, patients, series, studies


def visible(principal: Principal, table: Any) -> list[ColumnElement[bool]]:
    """Conditions limiting ``table`` (instances, series, studies or patients) to what ``principal`` may see."""
    if table is instances:
        condition = policy.visible(principal)
    elif table is series:
        condition = policy.visible_series(principal)
    elif table is studies:
        condition = policy.visible_studies(principal)
    elif table is patients:
        condition = policy.visible_patients(principal)
    else:
        raise ValueError(f"no visibility rule for the table {table.name!r}")
    return [] if condition is None else [condition]
