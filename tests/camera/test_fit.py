"""Size-aware messages: snapshots scaled down, then the last ones left out, with a note."""

from __future__ import annotations

import io

from PIL import Image

from doormail.camera.fit import attachment_size, fit_attachments
from doormail.camera.scale import letterbox
from tests.camera.pattern import jpeg_frame, moment_of

T = 1_700_000_000.0


def snapshots(count: int, width: int = 640, height: int = 480) -> list[bytes]:
    return [letterbox(jpeg_frame(T + i), width, height) for i in range(count)]


def total(images: list[bytes]) -> int:
    return sum(attachment_size(image) for image in images)


def test_attachments_within_the_budget_are_left_as_they_are() -> None:
    images = snapshots(3)
    assert fit_attachments(images, total(images)) == (images, [])


def test_attachments_over_the_budget_are_scaled_down_and_all_kept() -> None:
    images = snapshots(3)
    budget = total(images) // 2
    fitted, notes = fit_attachments(images, budget)
    assert len(fitted) == 3
    assert total(fitted) <= budget
    width, height = Image.open(io.BytesIO(fitted[0])).size
    assert width < 640 and abs(width / height - 4 / 3) < 0.02
    assert notes == [
        f"The snapshots were reduced to {width}x{height} to keep the message within its size limit."
    ]
    assert [moment_of(image, T) for image in fitted] == [T, T + 1, T + 2]


def test_when_scaling_is_not_enough_the_last_snapshots_are_left_out() -> None:
    images = snapshots(5, 160, 120)
    budget = total(images[:2])
    fitted, notes = fit_attachments(images, budget)
    assert 1 <= len(fitted) < 5
    assert total(fitted) <= budget
    assert [moment_of(image, T) for image in fitted] == [T + i for i in range(len(fitted))]
    left_out = 5 - len(fitted)
    assert (
        notes[-1]
        == f"{left_out} of 5 snapshots were left out to keep the message within its size limit."
    )


def test_no_room_at_all_leaves_every_snapshot_out() -> None:
    fitted, notes = fit_attachments(snapshots(1), 0)
    assert fitted == []
    assert notes[-1] == "1 of 1 snapshot was left out to keep the message within its size limit."


def test_attachment_size_counts_base64_lines_and_part_headers() -> None:
    assert attachment_size(bytes(57)) == 76 + 2 + 256
    assert attachment_size(bytes(3000)) > 4000
