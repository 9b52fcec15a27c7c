"""README's configuration table documents every setting, with its real default."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_configuration_table() -> None:
    rows = dict(re.findall(r"^\| `(LIGHTBOX_[A-Z0-9_]+)` \| ([^|]+) \|", README.read_text(), re.MULTILINE))
    for name, field in Settings.model_fields.items():
        variable = f"LIGHTBOX_{name.upper()}"
        assert variable in rows, f"{variable} is missing from README's configuration table"
        if field.default_factory is None:
            default = field.default
            shown = rows[variable].strip().strip("`")
            if default is None:
                assert shown == "(unset)", variable
                continue
            assert shown in (str(default), f"{default:g}" if isinstance(default, float) else str(default)), variable


def test_the_ohif_config_shown_is_the_one_the_ohif_test_runs() -> None:
    """README's OHIF ``app-config.js`` is ``examples/ohif/app-config.js`` verbatim (tests/e2e/test_ohif.py runs it)."""
    example = README.with_name("examples") / "ohif" / "app-config.js"
    blocks = re.findall(r"^```js\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)
    assert example.read_text() in blocks
