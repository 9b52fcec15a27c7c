"""The SELECT answering a :class:`FindQuery` (C-FIND, PS3.4 C.2.2.2 matching) at one level.

Visibility is :func:`app.index.visibility.visible` on the level's own table (the access policy's one
rule, as for QIDO-RS and the file list); text matching is :func:`app.index.search.wildcard`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, literal, null, select

from app.auth.principals import Principal
from app.index.base import FindQuery, QueryLevel
from app.index.schema import instances, patients, series, studies
from app.index.search import wildcard
from app.index.visibility import visible

_LEVEL_TABLES: dict[QueryLevel, tuple[Table, ...]] = {
    QueryLevel.PATIENT: (patients,),
    QueryLevel.STUDY: (patients, studies),
    QueryLevel.SERIES: (patients, studies, series),
    QueryLevel.IMAGE: (patients, studies, series, instances),
}


def _conditions(query: FindQuery, tables: tuple[Table, ...]) -> list[ColumnElement[bool]]:
    """Each key given is applied when its table is at or above the query's level."""
    found: list[ColumnElement[bool]] = []
    if query.patient_id:
        found.append(wildcard(patients.c.patient_id, query.patient_id))
    if query.patient_name:
        found.append(wildcard(patients.c.patient_name, query.patient_name, ignore_case=True))
    if studies in tables:
        if query.study_instance_uids:
            found.append(studies.c.study_instance_uid.in_(query.study_instance_uids))
        if query.study_date_from:
            found.append(studies.c.study_date >= query.study_date_from)
        if query.study_date_to:
            found.append(and_(studies.c.study_date <= query.study_date_to, studies.c.study_date != ""))
        if query.accession_number:
            found.append(wildcard(studies.c.accession_number, query.accession_number))
        if query.study_description:
            found.append(wildcard(studies.c.study_description, query.study_description, ignore_case=True))
        if query.modality and series not in tables:  # Modalities in Study (0008,0061): any of its series
            found.append(
                select(series.c.id)
                .where(series.c.study_pk == studies.c.id, wildcard(series.c.modality, query.modality))
                .exists()
            )
    if series in tables:
        if query.series_instance_uids:
            found.append(series.c.series_instance_uid.in_(query.series_instance_uids))
        if query.modality:
            found.append(wildcard(series.c.modality, query.modality))
    if instances in tables:
        if query.sop_instance_uids:
            found.append(instances.c.sop_instance_uid.in_(query.sop_instance_uids))
        if query.sop_class_uids:
            found.append(instances.c.sop_class_uid.in_(query.sop_class_uids))
    return found


def find_statement(principal: Principal, query: FindQuery) -> Select[Any]:
    """Rows of the level's table (joined to the levels above), visible ones only, in a stable order."""
    tables = _LEVEL_TABLES[query.level]
    source: Any = patients
    if studies in tables:
        source = source.join(studies, studies.c.patient_pk == patients.c.id)
    if series in tables:
        source = source.join(series, series.c.study_pk == studies.c.id)
    if instances in tables:
        source = source.join(instances, instances.c.series_pk == series.c.id)
    level_table = tables[-1]

    def column(table: Table, name: str, label: str) -> Any:
        return table.c[name].label(label) if table in tables else literal("").label(label)

    def number(table: Table, name: str, label: str) -> Any:
        return table.c[name].label(label) if table in tables else null().label(label)

    return (
        select(
            patients.c.patient_id,
            patients.c.patient_name,
            patients.c.patient_birth_date,
            column(studies, "study_instance_uid", "study_instance_uid"),
            column(studies, "study_date", "study_date"),
            column(studies, "study_description", "study_description"),
            column(studies, "accession_number", "accession_number"),
            column(studies, "modalities_in_study", "modalities_in_study"),
            column(series, "series_instance_uid", "series_instance_uid"),
            column(series, "modality", "modality"),
            number(series, "series_number", "series_number"),
            column(instances, "sop_class_uid", "sop_class_uid"),
            column(instances, "sop_instance_uid", "sop_instance_uid"),
            number(instances, "instance_number", "instance_number"),
            column(instances, "transfer_syntax_uid", "transfer_syntax_uid"),
            column(instances, "name", "name"),
        )
        .select_from(source)
        .where(*visible(principal, level_table), *_conditions(query, tables))
        .order_by(level_table.c.id)
        .limit(query.limit)
    )
