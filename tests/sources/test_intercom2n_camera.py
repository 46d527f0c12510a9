"""Snapshots from a 2N intercom's own camera (SPEC 11), against the emulated intercom whose
pictures show the moment they were taken: spread over a call's ringing span with `time`
reaching back into the intercom's 30 s; a call that rang longer has its early moments from
pictures kept while it rang; an access's picture is the card's moment; a refused camera gives
N/A images and says so."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import pytest

from doormail.devices.model import Intercom2N
from doormail.sources import intercom2n_camera
from doormail.sources.intercom2n_camera import CAMERA_DID_NOT_ANSWER, IntercomCamera
from tests.camera.pattern import moment_of
from tests.intercom2n.emulator import Intercom

USER, PASSWORD = "api", "api-password"


@pytest.fixture
async def intercom() -> AsyncIterator[Intercom]:
    async with Intercom(user=USER, password=PASSWORD) as running:
        yield running


def camera_of(intercom: Intercom) -> IntercomCamera:
    camera = IntercomCamera(
        Intercom2N(kind="2n", url=intercom.url, username=USER, password=PASSWORD)
    )
    camera.offset = intercom.clock.now() - time.time()
    return camera


async def test_snapshots_are_spread_over_the_ringing_span(intercom: Intercom) -> None:
    camera = camera_of(intercom)
    now = intercom.clock.now()
    pictures = await camera.snapshots(now - 10, now, 3, 640, 480)
    assert pictures.notes == []
    moments = [moment_of(jpeg, now) for jpeg in pictures.images]
    for shown, wanted in zip(moments, [now - 10, now - 5, now], strict=True):
        assert shown is not None and abs(shown - wanted) <= 1.0, (moments, now)


async def test_an_access_picture_shows_the_cards_moment(intercom: Intercom) -> None:
    camera = camera_of(intercom)
    card_at = intercom.clock.now() - 4
    pictures = await camera.snapshots(card_at, card_at, 1, 320, 240)
    shown = moment_of(pictures.images[0], card_at)
    assert shown is not None and abs(shown - card_at) <= 1.0


async def test_a_size_the_intercom_does_not_offer_is_scaled_from_one_it_does(
    intercom: Intercom,
) -> None:
    from PIL import Image

    camera = camera_of(intercom)
    now = intercom.clock.now()
    pictures = await camera.snapshots(now, now, 1, 1920, 1080)
    assert pictures.notes == []
    assert Image.open(io.BytesIO(pictures.images[0])).size == (1920, 1080)


async def test_a_call_ringing_longer_than_the_intercoms_memory_keeps_its_early_pictures(
    intercom: Intercom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intercom2n_camera, "RING_KEEP_AFTER", 0.0)
    monkeypatch.setattr(intercom2n_camera, "RING_EVERY", 0.1)
    camera = camera_of(intercom)
    rang_at = intercom.clock.now()
    camera.ringing(rang_at)
    await asyncio.sleep(0.5)
    intercom.advance(60)  # a minute later, by the intercom's clock
    camera.offset += 60
    await asyncio.sleep(0.3)
    camera.ended()
    now = intercom.clock.now()
    pictures = await camera.snapshots(rang_at, now, 2, 640, 480)
    first, last = (moment_of(jpeg, rang_at) for jpeg in pictures.images)
    assert first is not None and abs(first - rang_at) <= 1.0
    assert last is not None and abs(last - now) <= 1.0


async def test_a_refused_camera_gives_na_images_and_says_so() -> None:
    async with Intercom(user=USER, password=PASSWORD, privileges=frozenset({"call"})) as intercom:
        camera = camera_of(intercom)
        now = intercom.clock.now()
        pictures = await camera.snapshots(now, now, 1, 640, 480)
    assert pictures.notes == [CAMERA_DID_NOT_ANSWER]
    assert moment_of(pictures.images[0], now) is None
