"""``lightbox users ...`` and ``lightbox keys ...``: account administration from the server's shell.

They open the index database directly and act as an administrator (whoever can run them can read
the database anyway). Secrets are printed once, on stdout, never logged. What they change is in the
audit trail like any change through the API, with the operator as actor: ``cli:<OS user>``
(``actor_type`` ``user``; the ':' keeps it apart from every account name).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.auth.principals import Principal, Role, Scope
from app.config import Settings
from app.errors import LightboxError
from app.index.access import AccessStore
from app.services.audit import AuditService
from app.services.keys import KeyService
from app.services.users import UserService

T = TypeVar("T")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="add, list and disable user accounts").add_subparsers(dest="action")
    users.required = True
    add = users.add_parser("add", help="add a user (prints a generated password unless --password-stdin)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="an administrator")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users.add_parser("list", help="list users")
    disable = users.add_parser("disable", help="disable a user (their logins and keys stop at once)")
    disable.add_argument("name")
    keys = sub.add_parser("keys", help="create and revoke API keys").add_subparsers(dest="action")
    keys.required = True
    create = keys.add_parser("create", help="create an API key (printed alone on the last line)")
    create.add_argument("username")
    create.add_argument("--scope", choices=["read", "write", "admin"], default="read")
    create.add_argument("--expires-days", type=int, default=None)
    revoke = keys.add_parser("revoke", help="revoke an API key by id")
    revoke.add_argument("id")


def operator() -> Principal:
    """The administrator acting from the shell, named for the audit trail by their OS account."""
    try:
        who = getpass.getuser()
    except OSError:  # no login name, no passwd entry (some containers)
        who = f"uid{os.getuid()}"
    return Principal(f"cli:{who}"[:128], is_admin=True)


async def _with_services(settings: Settings, action: Callable[[UserService, KeyService], Awaitable[T]]) -> T:
    from app.index.audit import SqlAuditLog
    from app.index.sql import SqlInstanceIndex
    from app.main import database_url

    if settings.database_url is None:  # the default SQLite index lives in the storage folder
        settings.storage_dir.mkdir(parents=True, exist_ok=True)
    index = await SqlInstanceIndex.open(database_url(settings))
    audit = AuditService(SqlAuditLog(index.engine))
    try:
        store = AccessStore(index.engine)
        return await action(UserService(settings, store, audit), KeyService(store, audit))
    finally:
        await audit.close()  # the records of this command, written before the database closes
        await index.close()


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """One ``users``/``keys`` command; exit 1 with one line on stderr when it is refused."""
    try:
        return await _with_services(settings, lambda users, keys: _dispatch(args, users, keys))
    except LightboxError as exc:
        print(f"lightbox {args.command} {args.action}: {exc.message}", file=sys.stderr)
        return 1


async def _dispatch(args: argparse.Namespace, users: UserService, keys: KeyService) -> int:
    admin = operator()
    if args.command == "users" and args.action == "add":
        password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
        role = Role.ADMIN if args.admin else Role.USER
        user, password = await users.add(admin, args.name, password, role)
        print(f"added {user.role} {user.username}")
        if not args.password_stdin:
            print(f"password: {password}")
    elif args.command == "users" and args.action == "list":
        for user in await users.list(admin):
            print(f"{user.username}\t{user.role}\t{'disabled' if user.disabled else 'active'}")
    elif args.command == "users" and args.action == "disable":
        await users.change(admin, args.name, disabled=True)
        print(f"disabled {args.name}")
    elif args.command == "keys" and args.action == "create":
        new = await keys.create(admin, "cli", Scope.parse(args.scope), args.expires_days, args.username)
        print(f"created key {new.id} for {args.username} with scope {new.scope.label} (shown once):")
        print(new.key)
    else:  # keys revoke
        await keys.revoke(admin, args.id)
        print(f"revoked key {args.id}")
    return 0
