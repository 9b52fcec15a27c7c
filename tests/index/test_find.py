"""``InstanceIndex.find`` (C-FIND's index query) on SQLite: levels, matching, and visibility per principal."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from app.auth.principals import LOCAL_ADMIN, Principal
from app.errors import UploadTooLarge
from app.index.base import FindQuery, QueryLevel
from tests.conftest import sample

pytestmark = pytest.mark.anyio
ALICE, BOB = Principal("alice"), Principal("bob")


async def stored(app: FastAPI, principal: Principal, file: str) -> None:
    data = sample(file).read_bytes()
    result = await app.state.instances.store_bytes(principal, [data[:1000], data[1000:]], file)
    assert result.created


async def test_each_level_answers_only_what_the_principal_owns(app: FastAPI) -> None:
    await stored(app, ALICE, "CT_small.dcm")
    await stored(app, BOB, "MR_small.dcm")
    index = app.state.index
    for level in QueryLevel:
        mine = await index.find(ALICE, FindQuery(level))
        assert [m.patient_id for m in mine] == ["1CT1"], level
        everyone = await index.find(LOCAL_ADMIN, FindQuery(level))
        assert sorted(m.patient_id for m in everyone) == ["1CT1", "4MR1"], level
    image = (await index.find(BOB, FindQuery(QueryLevel.IMAGE)))[0]
    assert image.name and image.sop_class_uid and image.transfer_syntax_uid == "1.2.840.10008.1.2.1"


async def test_matching_keys(app: FastAPI) -> None:
    await stored(app, LOCAL_ADMIN, "CT_small.dcm")
    await stored(app, LOCAL_ADMIN, "MR_small.dcm")
    index = app.state.index

    async def patients(**keys: object) -> list[str]:
        return sorted(m.patient_id for m in await index.find(LOCAL_ADMIN, FindQuery(QueryLevel.STUDY, **keys)))  # type: ignore[arg-type]

    assert await patients(patient_name="compressedsamples^?T1") == ["1CT1"]  # case-insensitive, ? is one character
    assert await patients(modality="MR") == ["4MR1"]  # Modalities in Study at STUDY level
    assert await patients(study_date_from="20040501") == ["4MR1"]
    assert await patients(study_date_to="20040501") == ["1CT1"]
    assert await patients(patient_id="*1") == ["1CT1", "4MR1"]
    assert await patients(patient_id="100%") == []  # LIKE characters are literal


async def test_store_bytes_keeps_the_upload_size_limit(app: FastAPI) -> None:
    app.state.instances.settings = app.state.instances.settings.model_copy(update={"max_upload_bytes": 10})
    with pytest.raises(UploadTooLarge):
        await app.state.instances.store_bytes(LOCAL_ADMIN, [b"x" * 11], "big.dcm")
