"""Settings: enumerated values in any case, and the one-line message for an invalid one.

How each launcher reacts to an invalid setting (exit code 2, nothing else on stderr) is checked
on real processes in tests/e2e/test_launchers.py.
"""

from __future__ import annotations

import types
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import ValidationError, model_validator

from app.config import Settings, canonical_choice, invalid_settings_line, settings_from_environment


class Colour(Enum):
    RED = "red"
    GREEN = "Green"


@pytest.mark.parametrize("given", ["info", "INFO", "Info", " iNfO "])
def test_log_level_accepts_any_case(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("LIGHTBOX_LOG_LEVEL", given)
    assert Settings().log_level == "info"


@pytest.mark.parametrize("given", ["json", "JSON", "Json"])
def test_log_format_accepts_any_case(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("LIGHTBOX_LOG_FORMAT", given)
    assert Settings().log_format == "json"


def literal_choices(annotation: Any) -> list[str]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [c for member in get_args(annotation) for c in literal_choices(member)]
    return [c for c in get_args(annotation) if isinstance(c, str)] if get_origin(annotation) is Literal else []


def test_every_enumerated_setting_is_case_insensitive() -> None:
    """A Literal setting added later is covered without editing this test."""
    enumerated = {
        name: choices for name, field in Settings.model_fields.items() if (choices := literal_choices(field.annotation))
    }
    assert {"log_level", "log_format"} <= enumerated.keys()
    for name, choices in enumerated.items():
        for choice in choices:
            assert getattr(Settings.model_validate({name: choice.upper()}), name) == choice
            assert getattr(Settings.model_validate({name: choice.title()}), name) == choice


def test_a_wrong_choice_is_still_refused() -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({"log_level": "verbose"})
    with pytest.raises(ValidationError):
        Settings.model_validate({"log_format": "xml"})


def test_canonical_choice_knows_literals_optionals_and_enums() -> None:
    assert canonical_choice("LINEAR", Literal["linear", "Sigmoid"]) == "linear"
    assert canonical_choice("sigmoid", Literal["linear", "Sigmoid"] | None) == "Sigmoid"
    assert canonical_choice("GREEN", Colour) == "Green"
    assert canonical_choice("other", Literal["linear"]) == "other"  # left for validation to refuse
    assert canonical_choice(3, Literal["linear"]) == 3
    assert canonical_choice("TEXT", str) == "TEXT"  # free text keeps its case


def test_the_message_names_the_variable_and_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTBOX_PORT", "s3cr3t-port")
    with pytest.raises(ValidationError) as raised:
        Settings()
    line = invalid_settings_line(raised.value)
    assert line.startswith("lightbox: invalid LIGHTBOX_PORT: Input should be a valid integer")
    assert "s3cr3t" not in line and "\n" not in line


def test_several_problems_are_counted_on_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTBOX_PORT", "0")
    monkeypatch.setenv("LIGHTBOX_WORKERS", "0")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert invalid_settings_line(raised.value).endswith("(and 1 more)")


def test_settings_from_environment_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIGHTBOX_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit) as exited:
        settings_from_environment()
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "lightbox: invalid LIGHTBOX_LOG_FORMAT: Input should be 'auto', 'json' or 'text'\n"


class Guarded(Settings):
    """A cross-setting rule, as a model validator states it (the message is the validator's own)."""

    @model_validator(mode="after")
    def _loopback_only(self) -> Guarded:
        if self.host != "127.0.0.1":
            raise ValueError("LIGHTBOX_HOST beyond loopback needs authentication")
        return self


def test_a_rule_across_settings_reads_as_its_validator_wrote_it() -> None:
    with pytest.raises(ValidationError) as raised:
        Guarded(host="0.0.0.0")
    assert invalid_settings_line(raised.value) == (
        "lightbox: invalid settings: LIGHTBOX_HOST beyond loopback needs authentication"
    )
