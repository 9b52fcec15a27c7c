"""QIDO-RS (PS3.18 §10.6): search studies, series and instances, answered as ``application/dicom+json``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.api.deps import DicomWebDep, PrincipalDep, SettingsDep
from app.api.openapi import error_responses
from app.api.routes.dicomweb.common import (
    DICOM_JSON,
    JSON_ARRAY,
    SeriesUID,
    StudyUID,
    accepted,
    base_url,
    json_answer,
)
from app.auth.credentials import TOKEN_PARAMETER
from app.dicom.negotiation import check_json
from app.dicom.qido import Level, parse_search

router = APIRouter()

ERRORS = error_responses(400, 404, 406, 503)
RESULTS: dict[int | str, dict[str, Any]] = {
    200: {"content": {DICOM_JSON: JSON_ARRAY}, "description": "The matches, one DICOM JSON data set each (PS3.18 F.2)."}
}


async def _search(
    request: Request,
    service: DicomWebDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    level: Level,
    study: str | None = None,
    series: str | None = None,
) -> Response:
    check_json(accepted(request))
    transport = ("accept", TOKEN_PARAMETER)  # the media type and the share-token credential, not search keys
    params = [(name, value) for name, value in request.query_params.multi_items() if name not in transport]
    query = parse_search(level, params, study, series)
    body = await service.search(principal, query, base_url(request, settings))
    headers = {"Warning": ", ".join(f'299 lightbox "{text}"' for text in query.warnings)} if query.warnings else None
    return await json_answer(request, body, headers)


@router.get("/studies", summary="QIDO-RS search studies", responses={**ERRORS, **RESULTS})
async def search_studies(
    request: Request, service: DicomWebDep, settings: SettingsDep, principal: PrincipalDep
) -> Response:
    """PS3.18 §10.6.1 (Search Studies): the study-level attributes of Table 10.6.3-3 for each match.

    Matching keys by keyword or tag (``PatientName=Doe*``, ``00100020=123``), ``includefield`` (keywords,
    tags or ``all``), ``limit``, ``offset``, ``fuzzymatching`` (literal matching only, with a warning).
    """
    return await _search(request, service, settings, principal, Level.STUDY)


@router.get("/series", summary="QIDO-RS search all series", responses={**ERRORS, **RESULTS})
async def search_series(
    request: Request, service: DicomWebDep, settings: SettingsDep, principal: PrincipalDep
) -> Response:
    """PS3.18 §10.6.1 (Search Series): series of every study; study-level keys match too."""
    return await _search(request, service, settings, principal, Level.SERIES)


@router.get("/studies/{study}/series", summary="QIDO-RS search a study's series", responses={**ERRORS, **RESULTS})
async def search_study_series(
    request: Request, service: DicomWebDep, settings: SettingsDep, principal: PrincipalDep, study: StudyUID
) -> Response:
    """PS3.18 §10.6.1 (Search Series): the series of one study (Table 10.6.3-4 attributes)."""
    return await _search(request, service, settings, principal, Level.SERIES, study)


@router.get("/instances", summary="QIDO-RS search all instances", responses={**ERRORS, **RESULTS})
async def search_instances(
    request: Request, service: DicomWebDep, settings: SettingsDep, principal: PrincipalDep
) -> Response:
    """PS3.18 §10.6.1 (Search Instances): instances of every study (Table 10.6.3-5 attributes)."""
    return await _search(request, service, settings, principal, Level.INSTANCE)


@router.get("/studies/{study}/instances", summary="QIDO-RS search a study's instances", responses={**ERRORS, **RESULTS})
async def search_study_instances(
    request: Request, service: DicomWebDep, settings: SettingsDep, principal: PrincipalDep, study: StudyUID
) -> Response:
    """PS3.18 §10.6.1 (Search Instances): the instances of one study."""
    return await _search(request, service, settings, principal, Level.INSTANCE, study)


@router.get(
    "/studies/{study}/series/{series}/instances",
    summary="QIDO-RS search a series' instances",
    responses={**ERRORS, **RESULTS},
)
async def search_series_instances(
    request: Request,
    service: DicomWebDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
) -> Response:
    """PS3.18 §10.6.1 (Search Instances): the instances of one series."""
    return await _search(request, service, settings, principal, Level.INSTANCE, study, series)
