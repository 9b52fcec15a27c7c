"""The Dockerfile, read with Docker's own parser (no Docker engine here), and the pinned installs it shares with CI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import dockerfile
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def commands() -> tuple[dockerfile.Command, ...]:
    parsed: tuple[dockerfile.Command, ...] = dockerfile.parse_file(str(ROOT / "Dockerfile"))
    return parsed


def stages(commands: tuple[dockerfile.Command, ...]) -> list[list[dockerfile.Command]]:
    result: list[list[dockerfile.Command]] = []
    for command in commands:
        if command.cmd == "FROM":
            result.append([])
        result[-1].append(command)
    return result


def env_of(stage: list[dockerfile.Command]) -> dict[str, str]:
    env: dict[str, str] = {}
    for command in stage:
        if command.cmd == "ENV":
            env.update(zip(command.value[::2], command.value[1::2], strict=True))
    return env


def locked(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[A-Za-z0-9_.+!-]+", version), f"{path.name}: {line!r} is not pinned"
            pins[canonicalize_name(name)] = version
    return pins


def test_multi_stage_on_a_slim_pinned_base(commands: tuple[dockerfile.Command, ...]) -> None:
    build, final = stages(commands)
    assert build[0].value[1:] == ("AS", "build")
    for stage in (build, final):
        image = stage[0].value[0]
        assert re.fullmatch(r"python:3\.\d+-slim", image), image  # a minor version, never :latest
    copies = [c for c in final if c.cmd == "COPY"]
    assert [c.flags for c in copies] == [("--from=build",)]  # the runtime stage takes only the built venv
    assert not any(c.cmd == "RUN" and "pip" in c.value[0] for c in final)


def test_runs_as_a_non_root_user(commands: tuple[dockerfile.Command, ...]) -> None:
    final = stages(commands)[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(c.cmd == "RUN" and "useradd --system --uid 10001 --create-home --home-dir" in c.value[0] for c in final)
    assert [c.cmd for c in final].index("USER") < [c.cmd for c in final].index("CMD")


def test_listens_on_all_interfaces_with_the_storage_as_a_volume(commands: tuple[dockerfile.Command, ...]) -> None:
    final = stages(commands)[-1]
    env = env_of(final)
    assert env["LIGHTBOX_HOST"] == "0.0.0.0"
    assert env["LIGHTBOX_AUTH_REQUIRED"] == "true"  # beyond loopback the service refuses to start without it
    values = {k.removeprefix("LIGHTBOX_").lower(): v for k, v in env.items() if k.startswith("LIGHTBOX_")}
    settings = Settings.model_validate(values)  # the image's settings are valid
    assert str(settings.storage_dir) == "/srv/lightbox/uploads"
    [volume] = [c for c in final if c.cmd == "VOLUME"]
    assert volume.value == (str(settings.storage_dir),)
    [expose] = [c for c in final if c.cmd == "EXPOSE"]
    assert expose.value == (str(settings.port),)
    [cmd] = [c for c in final if c.cmd == "CMD"]
    assert cmd.value == ("lightbox",)  # the production entry point, not bare uvicorn


def test_healthcheck_probes_healthz(commands: tuple[dockerfile.Command, ...]) -> None:
    final = stages(commands)[-1]
    [check] = [c for c in final if c.cmd == "HEALTHCHECK"]
    flags = dict(flag.lstrip("-").split("=") for flag in check.flags)
    assert {"interval", "timeout", "retries"} <= flags.keys()
    assert check.value[0] == "CMD"
    assert f"http://127.0.0.1:{env_of(final)['LIGHTBOX_PORT']}/healthz" in " ".join(check.value)


def test_installs_exactly_what_ci_installs(commands: tuple[dockerfile.Command, ...]) -> None:
    """The Dockerfile's pinned install is scripts/test's, word for word; nothing is installed unpinned."""
    runs = [c.value[0] for c in stages(commands)[0] if c.cmd == "RUN" and "pip install" in c.value[0]]
    docker_installs = [re.sub(r"^\S+/python ", "python ", step.split("&&")[0].strip()) for step in runs]
    script = (ROOT / "scripts" / "test").read_text()
    ci_installs = [re.sub(r"^\S+/python ", "python ", line) for line in script.splitlines() if "pip install" in line]
    lock_step = "python -m pip install -q --disable-pip-version-check --no-cache-dir -r requirements.lock"
    assert docker_installs[0] == lock_step and lock_step in ci_installs
    assert docker_installs[1:] == ["python -m pip install -q --disable-pip-version-check --no-cache-dir --no-deps ."]
    assert all("-r requirements" in line or "--no-deps" in line for line in ci_installs)


def test_locks_pin_every_declared_dependency() -> None:
    """After changing pyproject.toml dependencies, run scripts/lock."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = locked(ROOT / "requirements.lock")
    test = locked(ROOT / "requirements-test.lock")
    assert not runtime.keys() & test.keys()
    for declared, pins in ((project["dependencies"], runtime), (project["optional-dependencies"]["test"], test)):
        for text in declared:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            version = pins.get(name) or runtime.get(name)
            assert version is not None, f"{name} is not in the lock files: run scripts/lock"
            assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version} vs {requirement}"


def test_dockerignore_keeps_the_context_small_but_complete(commands: tuple[dockerfile.Command, ...]) -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "tests", "uploads"} <= ignored
    copied = {src for c in commands if c.cmd == "COPY" and not c.flags for src in c.value[:-1]}
    assert copied == {"requirements.lock", "pyproject.toml", "README.md", "app"}
    assert not copied & ignored
