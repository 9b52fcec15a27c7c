"""Dependencies routes declare; everything comes from the app's lifespan state, never globals.

They are ``async def`` although most never await: FastAPI runs a plain ``def`` dependency in a worker
thread, and four thread hops per request cost more than the rest of a cached tag lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from app.auth.credentials import CSRF_HEADER, SESSION_COOKIE, TOKEN_PARAMETER, Authenticator, Presented
from app.auth.principals import LOCAL_ADMIN, Principal
from app.config import Settings
from app.errors import LightboxError
from app.index.base import InstanceIndex
from app.services.audit import AuditService
from app.services.dicomweb import DicomWebService
from app.services.grants import GrantService
from app.services.instances import InstanceService
from app.services.keys import KeyService
from app.services.renders import RenderService
from app.services.shares import ShareService
from app.services.study_archive import StudyArchiveService
from app.services.users import UserService


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_instances(request: Request) -> InstanceService:
    service: InstanceService = request.app.state.instances
    return service


async def get_renders(request: Request) -> RenderService:
    service: RenderService = request.app.state.renders
    return service


async def get_dicomweb(request: Request) -> DicomWebService:
    service: DicomWebService = request.app.state.dicomweb
    return service


async def get_archives(request: Request) -> StudyArchiveService:
    service: StudyArchiveService = request.app.state.archives
    return service


async def get_audit(request: Request) -> AuditService:
    service: AuditService = request.app.state.audit
    return service


async def get_index(request: Request) -> InstanceIndex:
    index: InstanceIndex = request.app.state.index
    return index


async def get_users(request: Request) -> UserService:
    service: UserService = request.app.state.users
    return service


async def get_keys(request: Request) -> KeyService:
    service: KeyService = request.app.state.keys
    return service


async def get_grants(request: Request) -> GrantService:
    service: GrantService = request.app.state.grants
    return service


async def get_shares(request: Request) -> ShareService:
    service: ShareService = request.app.state.shares
    return service


class _Documented:
    """Makes a scheme appear in the OpenAPI document (Swagger's Authorize button) without parsing
    anything: :func:`resolve_principal` reads every credential, in one place."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


class BearerScheme(_Documented, OAuth2PasswordBearer):
    pass


class BasicScheme(_Documented, HTTPBasic):
    pass


bearer_scheme = BearerScheme(tokenUrl="auth/login", auto_error=False, description="Login token, API key or share.")
basic_scheme = BasicScheme(auto_error=False, description="User name and password, or user name and API key.")


def presented(connection: HTTPConnection) -> Presented:
    """The credentials a request carries (the lean tag path builds the same from its scope)."""
    client = connection.client.host if connection.client else None
    return Presented(
        method=connection.scope.get("method", "GET"),
        authorization=connection.headers.get("authorization"),
        cookie=connection.cookies.get(SESSION_COOKIE),
        csrf=connection.headers.get(CSRF_HEADER),
        query_token=connection.query_params.get(TOKEN_PARAMETER),
        client=client,
    )


RESOLVED = "lightbox.principal"  # the scope key holding the caller once resolved (per request)


async def resolve_principal(connection: HTTPConnection) -> Principal:
    """Single-user mode: the local administrator; with auth required: whoever the credentials name.

    Resolved once per request: the lean tag path and the route share the answer through the scope."""
    settings: Settings = connection.app.state.settings
    if not settings.auth_required:
        return LOCAL_ADMIN
    known = connection.scope.get(RESOLVED)
    if isinstance(known, LightboxError):
        raise known  # one failed login counts once, even when the lean path asked first
    if isinstance(known, Principal):
        return known
    authenticator: Authenticator = connection.app.state.authenticator
    try:
        principal = await authenticator.resolve(presented(connection))
    except LightboxError as exc:
        connection.scope[RESOLVED] = exc
        raise
    connection.scope[RESOLVED] = principal
    return principal


async def get_principal(
    request: Request,
    _bearer: Annotated[None, Depends(bearer_scheme)] = None,
    _basic: Annotated[None, Depends(basic_scheme)] = None,
) -> Principal:
    """The caller, resolved once per request; 401 (``WWW-Authenticate: Bearer``) when auth fails."""
    return await resolve_principal(request)


SettingsDep = Annotated[Settings, Depends(get_settings)]
InstancesDep = Annotated[InstanceService, Depends(get_instances)]
RendersDep = Annotated[RenderService, Depends(get_renders)]
DicomWebDep = Annotated[DicomWebService, Depends(get_dicomweb)]
ArchivesDep = Annotated[StudyArchiveService, Depends(get_archives)]
AuditDep = Annotated[AuditService, Depends(get_audit)]
IndexDep = Annotated[InstanceIndex, Depends(get_index)]
UsersDep = Annotated[UserService, Depends(get_users)]
KeysDep = Annotated[KeyService, Depends(get_keys)]
GrantsDep = Annotated[GrantService, Depends(get_grants)]
SharesDep = Annotated[ShareService, Depends(get_shares)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
