"""Links (RetrieveURL) built from LIGHTBOX_PUBLIC_URL when the service sits behind a proxy."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.api.test_dicomweb import CT, ROOT, dicom, stow

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(storage_dir=tmp_path / "storage", public_url="https://pacs.example.org/lightbox")


async def test_links_use_the_public_url(client: httpx.AsyncClient) -> None:
    answer = await stow(client, [dicom(CT)])
    assert answer.json()["00081190"]["Value"][0].startswith("https://pacs.example.org/lightbox/dicom-web/studies/")
    (result,) = json.loads((await client.get(f"{ROOT}/studies")).content)
    assert result["00081190"]["Value"][0].startswith("https://pacs.example.org/lightbox/dicom-web/studies/")
