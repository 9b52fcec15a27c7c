import pytest

from app.errors import FileNotFound
from app.storage.names import check_stored_name, is_stored_name, new_stored_name, safe_base_name


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("IM000001", "IM000001"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\scan.dcm", "scan.dcm"),
        ("/abs/path/a b.dcm", "a_b.dcm"),
        ("evil\x00name\r\n.dcm", "evilname.dcm"),
        ("\u202egnp.dcm", "gnp.dcm"),
        ("Müller.dcm", "Muller.dcm"),
        ("..", "file"),
        ("", "file"),
        (None, "file"),
    ],
)
def test_safe_base_name(original: str | None, expected: str) -> None:
    assert safe_base_name(original) == expected


def test_long_names_are_bounded() -> None:
    assert len(safe_base_name("a" * 4096)) == 120
    assert is_stored_name(new_stored_name("a" * 4096 + ".dcm"))


def test_dcm_is_appended_only_when_missing() -> None:
    assert new_stored_name("IM000001").endswith("-IM000001.dcm")
    assert new_stored_name("ct.dcm").endswith("-ct.dcm")
    assert new_stored_name("CT.DCM").endswith("-CT.DCM")


@pytest.mark.parametrize(
    "name",
    [
        "../x.dcm",
        "x.dcm",
        "0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-../a.dcm",
        "0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-a.txt",
        "/etc/passwd",
        "0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-a.dcm\x00",
        "0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-%2e%2e.dcm/",
    ],
)
def test_foreign_names_are_not_found(name: str) -> None:
    with pytest.raises(FileNotFound):
        check_stored_name(name)
