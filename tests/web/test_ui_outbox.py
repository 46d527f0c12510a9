"""The Outbox tab opens a message as a mail app shows it: the pictures its HTML refers to
(`cid:`) are shown in place, and listed as the files they are."""

from __future__ import annotations

from datetime import UTC, datetime

from doormail.camera.na import na_image
from doormail.compose import compose
from doormail.settings import Settings
from doormail.web.ui_outbox import open_message


def test_an_opened_message_shows_its_pictures_in_place() -> None:
    settings = Settings.model_validate({"smtp": {"from": "door@example.com"}})
    message = compose(
        settings=settings,
        event_id="ev-1",
        kind="call",
        recipient="alice@example.com",
        subject="Missed call",
        html_body="<p>Missed call</p>",
        snapshots=[na_image(160, 120), na_image(320, 240)],
        at=datetime(2026, 11, 29, 14, 15, 16, tzinfo=UTC),
    )
    opened = open_message(message.data)
    assert opened.html is not None
    assert "cid:" not in opened.html
    assert opened.html.count('src="data:image/jpeg;base64,') == 2
    assert [name for name, _ in opened.images] == ["snapshot-1.jpg", "snapshot-2.jpg"]
