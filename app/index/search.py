"""QIDO-RS searches and WADO lookups as SQL on the index (never by opening files).

Each matching key of :mod:`app.dicom.qido` maps to one indexed column; a study search reads the
studies (and their patients), a series search adds the series, an instance search the instances.
Counts and Modalities in Study come from the index; the other return attributes from the DICOM
JSON header of one representative instance, fetched for the rows of the page only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select

from app.auth.principals import Principal
from app.dicom.qido import Level, Match, MatchKind, SearchQuery
from app.index.schema import instances, patients, series, studies
from app.index.visibility import visible

COLUMNS: dict[str, Any] = {
    "StudyDate": studies.c.study_date,
    "StudyTime": studies.c.study_time,
    "AccessionNumber": studies.c.accession_number,
    "ModalitiesInStudy": studies.c.modalities_in_study,
    "ReferringPhysicianName": studies.c.referring_physician_name,
    "PatientName": patients.c.patient_name,
    "PatientID": patients.c.patient_id,
    "PatientBirthDate": patients.c.patient_birth_date,
    "StudyInstanceUID": studies.c.study_instance_uid,
    "StudyID": studies.c.study_id,
    "StudyDescription": studies.c.study_description,
    "Modality": series.c.modality,
    "SeriesInstanceUID": series.c.series_instance_uid,
    "SeriesNumber": series.c.series_number,
    "SeriesDescription": series.c.series_description,
    "PerformedProcedureStepStartDate": series.c.pps_start_date,
    "PerformedProcedureStepStartTime": series.c.pps_start_time,
    "SOPClassUID": instances.c.sop_class_uid,
    "SOPInstanceUID": instances.c.sop_instance_uid,
    "InstanceNumber": instances.c.instance_number,
}


def like_pattern(text: str) -> str:
    """DICOM wildcards (PS3.4 C.2.2.2.4: ``*`` any run, ``?`` one character) as a LIKE pattern."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _literal_like(text: str) -> str:
    """``text`` matched literally by LIKE with ``!`` as the escape character."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def wildcard(column: Any, value: str, ignore_case: bool = False) -> ColumnElement[bool]:
    """Single value matching, or wildcard matching when ``value`` holds ``*`` or ``?`` (PS3.4 C.2.2.2.1,
    C.2.2.2.4); QIDO-RS and C-FIND both match text this way."""
    target = func.lower(column) if ignore_case else column
    wanted = value.lower() if ignore_case else value
    if "*" in value or "?" in value:
        like: ColumnElement[bool] = target.like(like_pattern(wanted), escape="\\")
        return like
    equal: ColumnElement[bool] = target == wanted
    return equal


def condition(match: Match) -> ColumnElement[bool]:
    """The SQL of one match (PS3.4 C.2.2.2); ranges compare the DICOM text, which sorts as it reads."""
    column = COLUMNS[match.keyword]
    kind = match.kind
    if kind is MatchKind.UID:
        return column.in_(match.values)  # type: ignore[no-any-return]
    if kind is MatchKind.NUMBER:
        return column == int(match.values[0])  # type: ignore[no-any-return]
    if kind is MatchKind.ANY_OF:  # stored as "CT\MR": look for \value\ in \CT\MR\
        wrapped = literal("\\") + column + literal("\\")
        return or_(*(wrapped.like(f"%\\{_literal_like(v)}\\%", escape="!") for v in match.values))
    if kind in (MatchKind.DATE, MatchKind.TIME):
        if match.values and kind is MatchKind.DATE:
            return column == match.values[0]  # type: ignore[no-any-return]
        if match.values:  # a time matches at the precision given: 1530 matches 153000.5
            return column.like(match.values[0] + "%")  # type: ignore[no-any-return]
        parts: list[ColumnElement[bool]] = [column != ""]
        if match.low:
            parts.append(column >= match.low)
        if match.high:  # a time's upper end includes its finer digits: 1600 includes 160059
            parts.append(column <= (match.high + "~" if kind is MatchKind.TIME else match.high))
        return and_(*parts)
    return wildcard(column, match.values[0], kind is MatchKind.PERSON_NAME)


def _header_of_first(principal: Principal, study_level: bool) -> Any:
    """The stored header of the first visible instance of the outer query's study or series
    (a correlated subquery; at study level it reaches the instances through its own series alias)."""
    if study_level:
        own_series = series.alias("first_series")
        source: Any = instances.join(own_series, own_series.c.id == instances.c.series_pk)
        where: ColumnElement[bool] = own_series.c.study_pk == studies.c.id
    else:
        source, where = instances, instances.c.series_pk == series.c.id
    return (
        select(instances.c.header)
        .select_from(source)
        .where(where, *visible(principal, instances))
        .order_by(instances.c.id)
        .limit(1)
        .scalar_subquery()
    )


def search_statement(principal: Principal, query: SearchQuery) -> Select[Any]:
    """One statement answering ``query``: identity, counts and a representative header per row."""
    conditions = [condition(match) for match in query.matches]
    if query.study_uid:
        conditions.append(studies.c.study_instance_uid == query.study_uid)
    if query.series_uid:
        conditions.append(series.c.series_instance_uid == query.series_uid)
    source: Any = studies.join(patients, patients.c.id == studies.c.patient_pk)
    conditions += visible(principal, studies)
    if query.level is Level.STUDY:
        series_count = (
            select(func.count())
            .select_from(series)
            .where(series.c.study_pk == studies.c.id, *visible(principal, series))
            .scalar_subquery()
        )
        instance_count = (
            select(func.count())
            .select_from(instances.join(series, series.c.id == instances.c.series_pk))
            .where(series.c.study_pk == studies.c.id, *visible(principal, instances))
            .scalar_subquery()
        )
        return (
            select(
                studies.c.study_instance_uid,
                literal("").label("series_instance_uid"),
                literal("").label("sop_instance_uid"),
                studies.c.modalities_in_study,
                series_count.label("related_series"),
                instance_count.label("related_instances"),
                _header_of_first(principal, study_level=True).label("header"),
            )
            .select_from(source)
            .where(*conditions)
            .order_by(studies.c.id)
            .limit(query.limit)
            .offset(query.offset)
        )
    source = source.join(series, series.c.study_pk == studies.c.id)
    conditions += visible(principal, series)
    if query.level is Level.SERIES:
        instance_count = (
            select(func.count())
            .select_from(instances)
            .where(instances.c.series_pk == series.c.id, *visible(principal, instances))
            .scalar_subquery()
        )
        return (
            select(
                studies.c.study_instance_uid,
                series.c.series_instance_uid,
                literal("").label("sop_instance_uid"),
                studies.c.modalities_in_study,
                literal(0).label("related_series"),
                instance_count.label("related_instances"),
                _header_of_first(principal, study_level=False).label("header"),
            )
            .select_from(source)
            .where(*conditions)
            .order_by(series.c.id)
            .limit(query.limit)
            .offset(query.offset)
        )
    source = source.join(instances, instances.c.series_pk == series.c.id)
    conditions += visible(principal, instances)
    return (
        select(
            studies.c.study_instance_uid,
            series.c.series_instance_uid,
            instances.c.sop_instance_uid,
            studies.c.modalities_in_study,
            literal(0).label("related_series"),
            literal(0).label("related_instances"),
            instances.c.header,
        )
        .select_from(source)
        .where(*conditions)
        .order_by(instances.c.id)
        .limit(query.limit)
        .offset(query.offset)
    )


def locate_statement(
    principal: Principal, study_uid: str, series_uid: str | None, sop_uid: str | None, headers: bool
) -> Select[Any]:
    """The visible instances of a study, series or instance, in series then instance order."""
    columns: list[Any] = [
        instances.c.name,
        studies.c.study_instance_uid,
        series.c.series_instance_uid,
        instances.c.sop_instance_uid,
        instances.c.sop_class_uid,
        instances.c.transfer_syntax_uid,
        instances.c.number_of_frames,
    ]
    if headers:
        columns.append(instances.c.header)
    conditions: list[ColumnElement[bool]] = [studies.c.study_instance_uid == study_uid]
    if series_uid is not None:
        conditions.append(series.c.series_instance_uid == series_uid)
    if sop_uid is not None:
        conditions.append(instances.c.sop_instance_uid == sop_uid)
    return (
        select(*columns)
        .select_from(
            instances.join(series, series.c.id == instances.c.series_pk).join(
                studies, studies.c.id == series.c.study_pk
            )
        )
        .where(*conditions, *visible(principal, instances))
        .order_by(
            series.c.series_number.is_(None),
            series.c.series_number,
            series.c.id,
            instances.c.instance_number.is_(None),
            instances.c.instance_number,
            instances.c.id,
        )
    )
