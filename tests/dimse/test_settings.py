"""The LIGHTBOX_DIMSE_* settings refuse unsafe or malformed values at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings


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
