"""An index database that cannot be reached is a 503 whose message names the failure's kind only:
never the server's address, the credentials of the URL or the database's own text (which may quote
a value being written)."""

from __future__ import annotations

import pytest

from app.errors import IndexUnavailable
from app.index.sql import SqlInstanceIndex
from tests.e2e.server import free_port

pytestmark = pytest.mark.anyio


async def test_an_unreachable_postgresql_is_named_by_kind_only() -> None:
    port = free_port()  # nothing listens here
    url = f"postgresql://lightbox:s3cret-Pa55@127.0.0.1:{port}/lightbox_index"

    with pytest.raises(IndexUnavailable) as raised:
        await SqlInstanceIndex.open(url)

    message = raised.value.message
    assert message.startswith("the index database failed (")
    for secret in ("s3cret-Pa55", "127.0.0.1", str(port), "lightbox_index", "refused"):
        assert secret not in message
