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

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from app.auth.principals import Principal, Role, Scope
from app.errors import Forbidden
from app.index.schema import grants, instances, series, studies, users

READ_ACCESS = ("read", "write")
WRITE_ACCESS = ("write",)

_series = series.alias("policy_series")
_studies = studies.alias("policy_studies")
_grantors = users.alias("policy_grantors")


def _study_of_instance() -> ColumnElement[str]:
    """The Study Instance UID of the ``instances`` row being filtered (correlated on its series)."""
    return (
        select(_studies.c.study_instance_uid)
        .select_from(_series.join(_studies, _studies.c.id == _series.c.study_pk))
        .where(_series.c.id == instances.c.series_pk)
        .correlate(instances)  # explicitly: auto-correlation reaches only the next enclosing SELECT
        .scalar_subquery()
    )


def _granted(grantee: str, access: Collection[str]) -> ColumnElement[bool]:
    """A live grant to ``grantee`` on this instance's study from its owner, or from an administrator."""
    return exists(
        select(grants.c.id)
        .select_from(grants.join(_grantors, _grantors.c.username == grants.c.grantor))
        .where(
            grants.c.grantee == grantee,
            grants.c.access.in_(access),
            grants.c.study_instance_uid == _study_of_instance(),
            _grantors.c.disabled == false(),
            or_(grants.c.grantor == instances.c.owner, _grantors.c.role == Role.ADMIN.value),
        )
        .correlate(instances)
    )


def _writable_by_user(name: str, is_admin: bool) -> ColumnElement[bool]:
    if is_admin:
        return true()
    return or_(instances.c.owner == name, _granted(name, WRITE_ACCESS))


def visible(principal: Principal) -> ColumnElement[bool] | None:
    """The condition on ``instances`` rows this principal may see; None: everything (an administrator)."""
    share = principal.share
    if share is not None:
        in_study = _study_of_instance() == share.study_instance_uid
        return and_(in_study, _writable_by_user(share.creator, share.creator_is_admin))
    if principal.is_admin:
        return None
    return or_(instances.c.owner == principal.name, _granted(principal.name, READ_ACCESS))


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
