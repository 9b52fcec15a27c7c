"""The LIGHTBOX_DIMSE_* settings refuse unsafe or malformed values at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings, exposure_problem, settings_from_environment
from app.main import create_app


def test_accept_any_is_refused_beyond_loopback() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        Settings(dimse_accept_any=True, dimse_host="0.0.0.0")
    assert Settings(dimse_accept_any=True, dimse_host="127.0.0.1").dimse_accept_any
    assert Settings(dimse_accept_any=True, dimse_host="::1").dimse_accept_any


def test_malformed_peers_are_refused() -> None:
    with pytest.raises(ValidationError, match="AE@address:user"):
        Settings(dimse_peers="CT1@10.0.0.5")


def test_off_by_default() -> None:
    assert Settings().dimse_port is None


def test_a_listener_beyond_loopback_needs_auth_like_http() -> None:
    exposed = exposure_problem(Settings(dimse_port=11112, dimse_host="0.0.0.0"))
    assert exposed is not None and "LIGHTBOX_DIMSE_HOST" in exposed
    assert exposure_problem(Settings(dimse_port=11112, dimse_host="0.0.0.0", auth_required=True)) is None
    assert exposure_problem(Settings(dimse_port=11112, dimse_host="127.0.0.1")) is None
    assert exposure_problem(Settings(dimse_host="0.0.0.0")) is None  # no listener: nothing exposed
    with pytest.raises(RuntimeError, match="LIGHTBOX_DIMSE_HOST"):
        create_app(Settings(dimse_port=11112, dimse_host="0.0.0.0"))


def test_the_environment_refuses_to_start_an_exposed_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTBOX_DIMSE_PORT", "11112")
    monkeypatch.setenv("LIGHTBOX_DIMSE_HOST", "0.0.0.0")
    with pytest.raises(SystemExit) as stopped:
        settings_from_environment()
    assert stopped.value.code == 2


def test_accept_any_is_single_user_mode_only() -> None:
    with pytest.raises(ValidationError, match="single-user"):
        Settings(dimse_accept_any=True, auth_required=True)
