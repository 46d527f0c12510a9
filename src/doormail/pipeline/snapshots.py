"""The snapshots of a decision: one set of pictures per (span, count, size), so that every
recipient of an event sees the same pictures, taken while no transaction is open (the camera
may take a while)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from doormail.camera import Pictures, SnapshotSource
from doormail.rules import Mail

# (span, count, width, height): what one set of pictures is taken for.
Key = tuple[tuple[float, float], int, int, int]
Taken = Mapping[Key, Pictures]


def key_of(mail: Mail) -> Key | None:
    """The set of pictures `mail` carries; None when its tab attaches none."""
    if not mail.snapshots.attach:
        return None
    width, height = mail.picture_size
    return mail.span, mail.snapshots.count, width, height


def wanted(mails: Sequence[Mail]) -> bool:
    """Whether any of the mails carries pictures."""
    return any(key_of(mail) is not None for mail in mails)


async def take(camera: SnapshotSource, mails: Sequence[Mail]) -> Taken:
    """Each set of pictures the mails carry, asked of `camera` once."""
    taken: dict[Key, Pictures] = {}
    for mail in mails:
        key = key_of(mail)
        if key is not None and key not in taken:
            (start, end), count, width, height = key
            taken[key] = await camera.snapshots(start, end, count, width, height)
    return taken
