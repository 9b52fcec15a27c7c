"""``LIGHTBOX_DIMSE_PEERS`` parsing and who may associate."""

from __future__ import annotations

import pytest

from app.dimse.peers import Peer, parse_peers
from app.dimse.scp import CallerRules


def test_entries_parse_into_peers_by_ae_title() -> None:
    peers = parse_peers(" CT1@10.0.0.5:radiology, US2@10.0.0.9:radiology ,LOCAL@::1:me,")
    assert peers == {
        "CT1": Peer("CT1", "10.0.0.5", "radiology"),
        "US2": Peer("US2", "10.0.0.9", "radiology"),
        "LOCAL": Peer("LOCAL", "::1", "me"),
    }
    assert parse_peers("") == {}


@pytest.mark.parametrize(
    "text",
    [
        "CT1",  # no address, no user
        "CT1@10.0.0.5",  # no user
        "CT1@10.0.0.5:",  # empty user
        "@10.0.0.5:radiology",  # empty AE title
        "A_TITLE_LONGER_THAN_16@10.0.0.5:radiology",  # PS3.5 6.2: at most 16 characters
        "CT\\1@10.0.0.5:radiology",  # backslash is not allowed in AE
        "CT1@scanner.example:radiology",  # a name, not an address
        "CT1@10.0.0.5:a,CT1@10.0.0.6:b",  # twice
    ],
)
def test_malformed_entries_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="peer"):
        parse_peers(text)


def test_addresses_compare_as_ips() -> None:
    peer = Peer("CT1", "127.0.0.1", "u")
    assert peer.calls_from("127.0.0.1") and peer.calls_from("::ffff:127.0.0.1")
    assert not peer.calls_from("127.0.0.2") and not peer.calls_from("not an address")
    assert Peer("CT1", "localhost", "u").calls_from("::1")


def test_unknown_titles_are_refused_unless_any_is_accepted() -> None:
    peers = parse_peers("CT1@10.0.0.5:radiology")
    strict, lenient = CallerRules(peers, accept_any=False), CallerRules(peers, accept_any=True)
    assert strict.refusal("CT1", "10.0.0.5") is None
    assert strict.refusal("CT1 ", "10.0.0.5") is None  # trailing blanks are not significant (PS3.5 6.2)
    assert strict.refusal("OTHER", "10.0.0.5") == "calling AE title not recognised"
    assert strict.refusal("CT1", "10.0.0.6") is not None  # a known title from the wrong machine
    assert lenient.refusal("OTHER", "127.0.0.1") is None
    assert lenient.refusal("CT1", "10.0.0.6") is not None  # a known title still must call from its address
