"""Migration 0005_dicomweb: the new QIDO matching columns are filled for rows stored before it."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from app.index.migrate import alembic_config

HEADER = {
    "00080030": {"vr": "TM", "Value": ["101500"]},
    "00080090": {"vr": "PN", "Value": [{"Alphabetic": "Welby^Marcus"}]},
    "00200010": {"vr": "SH", "Value": ["S1"]},
    "0008103E": {"vr": "LO", "Value": ["Axial"]},
    "00400244": {"vr": "DA", "Value": ["20200105"]},
}


def _run(url: str, revision: str, down: bool = False) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()


def test_upgrade_fills_the_new_columns_from_stored_headers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    _run(url, "0002")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO patients VALUES (1, 'local', 'P1', 'Doe^Jane', '')"))
        conn.execute(text("INSERT INTO studies VALUES (1, 'local', 1, '1.2', '20200105', '', '', 'MR')"))
        conn.execute(text("INSERT INTO series VALUES (1, 'local', 1, '1.2.3', 'MR', 1)"))
        conn.execute(
            text(
                "INSERT INTO instances (id, owner, series_pk, name, sop_class_uid, sop_instance_uid, "
                "transfer_syntax_uid, size, sha256, uploaded_at_us, header, modality) VALUES "
                "(1, 'local', 1, 'a.dcm', '1.2.840.10008.5.1.4.1.1.4', '1.2.3.4', '1.2.840.10008.1.2.1', 1, 'x', 1, "
                ":header, 'MR')"
            ),
            {"header": json.dumps(HEADER)},
        )
    engine.dispose()
    _run(url, "0005_dicomweb")
    engine = create_engine(url)
    with engine.connect() as conn:
        study = conn.execute(text("SELECT study_time, referring_physician_name, study_id FROM studies")).one()
        series = conn.execute(text("SELECT series_description, pps_start_date, pps_start_time FROM series")).one()
    engine.dispose()
    assert tuple(study) == ("101500", "Welby^Marcus", "S1")
    assert tuple(series) == ("Axial", "20200105", "")
    _run(url, "0002", down=True)  # and back
