"""The one place that says what a principal may see and do.

Seeing (PS3.15 E.1's "minimum necessary" applied to a file service): a caller sees an instance when
they own it (uploaded it), are an administrator, hold a grant that covers it, or present a share
token that covers it. A grant or share names a Study Instance UID (0020,000D) but covers only the
instances of that study its granting user owns (an administrator's covers all of them), so uploading
a file that carries somebody else's Study UID and then sharing "that study" exposes nothing of theirs.

Seeing is a SQL condition on ``instances`` (:func:`visible`), put into every query by the index, so
nothing invisible is ever fetched. Doing is :func:`writable` (delete) and the ``require_*`` checks.
Invisible answers FileNotFound (404, exactly as absent); visible but not allowed answers Forbidden.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, FromClause, Select, false, or_, select, true

from app.auth.principals import Principal, Role, Scope, ShareScope
from app.errors import Forbidden
from app.index.schema import grants, instances, patients, series, studies, users

READ_ACCESS = ("read", "write")
WRITE_ACCESS = ("write",)

# Aliases: the subqueries below must never correlate with the tables of the query they filter.
_series = series.alias("policy_series")
_studies = studies.alias("policy_studies")
_grantors = users.alias("policy_grantors")
_shared_series_t = series.alias("policy_shared_series")
_shared_studies = studies.alias("policy_shared_studies")
_visible_series = series.alias("policy_visible_series")
_visible_studies = studies.alias("policy_visible_studies")


def _covered_series(grantee: str, access: Collection[str]) -> Select[tuple[int]]:
    """Series a live grant to ``grantee`` covers: of the granted study, owned by the grantor (any
    owner's when the grantor is an administrator). Series rows carry their instances' owner, so
    this is one uncorrelated subquery the database runs once, not once per instance."""
    return (
        select(_series.c.id)
        .select_from(
            _series.join(_studies, _studies.c.id == _series.c.study_pk)
            .join(grants, grants.c.study_instance_uid == _studies.c.study_instance_uid)
            .join(_grantors, _grantors.c.username == grants.c.grantor)
        )
        .where(
            grants.c.grantee == grantee,
            grants.c.access.in_(access),
            _grantors.c.disabled == false(),
            or_(grants.c.grantor == _series.c.owner, _grantors.c.role == Role.ADMIN.value),
        )
        .correlate(None)
    )


def _writable_by_user(name: str, is_admin: bool) -> ColumnElement[bool]:
    if is_admin:
        return true()
    return or_(instances.c.owner == name, instances.c.series_pk.in_(_covered_series(name, WRITE_ACCESS)))


def _shared_series(share: ShareScope) -> Select[tuple[int]]:
    """The study's series its creator could change (all of them for an administrator)."""
    shared, study = _shared_series_t, _shared_studies
    in_study = select(shared.c.id).select_from(shared.join(study, study.c.id == shared.c.study_pk)).correlate(None)
    in_study = in_study.where(study.c.study_instance_uid == share.study_instance_uid)
    if share.creator_is_admin:
        return in_study
    own = shared.c.owner == share.creator
    return in_study.where(or_(own, shared.c.id.in_(_covered_series(share.creator, WRITE_ACCESS))))


def visible(principal: Principal) -> ColumnElement[bool] | None:
    """The condition on ``instances`` rows this principal may see; None: everything (an administrator)."""
    if principal.share is not None:
        return instances.c.series_pk.in_(_shared_series(principal.share))
    if principal.is_admin:
        return None
    return or_(
        instances.c.owner == principal.name, instances.c.series_pk.in_(_covered_series(principal.name, READ_ACCESS))
    )


def visible_series(principal: Principal, table: FromClause = series) -> ColumnElement[bool] | None:
    """The condition on ``series`` rows (or an alias of them) this principal may see: the series of
    :func:`visible` instances (series rows carry their instances' owner); None: everything."""
    if principal.share is not None:
        return table.c.id.in_(_shared_series(principal.share))
    if principal.is_admin:
        return None
    return or_(table.c.owner == principal.name, table.c.id.in_(_covered_series(principal.name, READ_ACCESS)))


def visible_studies(principal: Principal, table: FromClause = studies) -> ColumnElement[bool] | None:
    """The condition on ``studies`` rows: a study is seen when one of its series is; None: everything."""
    condition = visible_series(principal, _visible_series)
    if condition is None:
        return None
    return table.c.id.in_(select(_visible_series.c.study_pk).where(condition).correlate(None))


def visible_patients(principal: Principal, table: FromClause = patients) -> ColumnElement[bool] | None:
    """The condition on ``patients`` rows: a patient is seen when one of their studies is; None: everything."""
    condition = visible_studies(principal, _visible_studies)
    if condition is None:
        return None
    return table.c.id.in_(select(_visible_studies.c.patient_pk).where(condition).correlate(None))


def writable(principal: Principal) -> ColumnElement[bool]:
    """The condition on visible ``instances`` rows this principal may change (delete)."""
    if not principal.may_write:
        return false()
    return _writable_by_user(principal.name, principal.is_admin)


def require_write(principal: Principal, what: str = "this") -> None:
    """Uploading and changing need a login or a ``write``/``admin`` key; share links only read."""
    if not principal.may_write:
        raise Forbidden(f"this credential may only read: {what} needs write access")


def require_admin(principal: Principal) -> None:
    """User management, /metrics: an administrator with a login or an ``admin`` key."""
    if not (principal.is_admin and principal.scope >= Scope.ADMIN and principal.share is None):
        raise Forbidden("this needs an administrator")


def require_account(principal: Principal) -> None:
    """Managing one's own keys, grants and shares needs a user's credential, not a share link."""
    if principal.share is not None:
        raise Forbidden("a share link cannot manage keys, grants or shares")


def key_scope_allowed(principal: Principal, scope: Scope) -> None:
    """A key never carries more than the credential that creates it; only administrators make admin keys."""
    require_account(principal)
    if scope > principal.scope or (scope is Scope.ADMIN and not principal.is_admin):
        raise Forbidden(f"this credential cannot create a key with scope {scope.label}")
