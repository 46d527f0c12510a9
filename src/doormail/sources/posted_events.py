"""The body of `POST /api/events` (SPEC section 4): one event object or an array of them. The
whole body is validated before any event is taken (a bad one names its field, and then none is
taken); the events are taken one after the other, in order (a call's ringing before its end),
and answered in the shape they came in: an array in, an array out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from doormail.events import Event, parse_events
from doormail.pipeline.commit import Accepted

Reply = dict[str, Any]


async def take(
    submit: Callable[[Event], Awaitable[Accepted]],
    body: object,
    check: Callable[[Event, str], None] | None = None,
) -> Reply | list[Reply]:
    """The replies to the decoded JSON `body`; EventError names the first bad field (`check`
    looks at each event before any is taken: a `device` no device has)."""
    events, many = parse_events(body)
    for index, event in enumerate(events):
        if check is not None:
            check(event, f"events[{index}].device" if many else "device")
    replies = [(await submit(event)).reply() for event in events]
    return replies if many else replies[0]
