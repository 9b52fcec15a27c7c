"""QIDO searches and WADO lookups on the real SQLite index apply the same visibility as every other query."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from pydicom import dcmread

from app.auth.principals import LOCAL_ADMIN, Principal
from app.dicom.qido import Level, parse_search
from app.services.instances import InstanceService
from tests.conftest import sample

pytestmark = pytest.mark.anyio

ALICE = Principal("alice")
BOB = Principal("bob")


async def store_as(service: InstanceService, principal: Principal, name: str) -> None:
    upload = await service.begin_upload(name)
    await upload.write(sample(name).read_bytes())
    prepared = await upload.prepare()
    assert prepared is not None
    await service.commit(principal, prepared)


async def test_each_principal_finds_only_what_it_may_see(app: FastAPI) -> None:
    service: InstanceService = app.state.instances
    await store_as(service, ALICE, "CT_small.dcm")
    await store_as(service, BOB, "MR_small.dcm")
    ct, mr = dcmread(sample("CT_small.dcm")), dcmread(sample("MR_small.dcm"))
    index = service.index
    for level in Level:
        query = parse_search(level, [])
        alice = await index.search(ALICE, query)
        assert [row.study_instance_uid for row in alice] == [ct.StudyInstanceUID], level
        assert len(await index.search(LOCAL_ADMIN, query)) == 2, level
    assert await index.locate(ALICE, str(mr.StudyInstanceUID)) == []
    (found,) = await index.locate(BOB, str(mr.StudyInstanceUID), headers=True)
    assert found.sop_instance_uid == mr.SOPInstanceUID
    assert found.header is not None and found.header["00080018"]["Value"] == [mr.SOPInstanceUID]


async def test_counts_and_modalities_come_from_the_index(app: FastAPI) -> None:
    service: InstanceService = app.state.instances
    await store_as(service, ALICE, "emri_small.dcm")
    (study,) = await service.index.search(ALICE, parse_search(Level.STUDY, []))
    assert (study.related_series, study.related_instances, study.modalities_in_study) == (1, 1, "MR")
    (series,) = await service.index.search(ALICE, parse_search(Level.SERIES, [("Modality", "M?")]))
    assert series.related_instances == 1
    assert await service.index.search(ALICE, parse_search(Level.SERIES, [("Modality", "CT")])) == []
