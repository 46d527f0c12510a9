"""`/api/camera`: a snapshot from the camera's buffer, now or seconds ago (as the intercom's own
`/api/camera/snapshot` does), for the web UI and for checking a camera; and what the camera is
doing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from doormail.web.errors import ApiError
from doormail.web.schemas import json_reply, refusal, text_reply
from doormail.web.state import service_of

router = APIRouter(prefix="/api/camera", tags=["camera"])


@router.get(
    "/snapshot",
    response_class=Response,
    responses={
        200: text_reply("image/jpeg", "the picture (N/A without a camera)", binary=True),
        422: refusal("a size out of range, or a time beyond the buffer"),
    },
)
async def snapshot(
    request: Request,
    width: Annotated[int, Query(ge=16, le=1920)] = 640,
    height: Annotated[int, Query(ge=16, le=1080)] = 480,
    time_: Annotated[float, Query(alias="time", le=0)] = 0.0,
) -> Response:
    """A JPEG of `width`x`height`; `time` is 0 for now or negative for seconds into the past.
    Without a camera, or when it does not answer, the picture is the N/A image."""
    service = service_of(request)
    settings = await asyncio.to_thread(service.settings.load)
    if -time_ > settings.camera.buffer_seconds:
        raise ApiError(
            422,
            "validation",
            f"must be within camera.buffer_seconds ({settings.camera.buffer_seconds} s)",
            "time",
        )
    moment = time.time() + time_
    shots = await service.camera.snapshots(moment, moment, 1, width, height)
    answer = "no-answer" if shots.notes else "ok"
    if settings.camera.source == "none":
        answer = "none"
    return Response(
        shots.images[0],
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store", "X-Doormail-Camera": answer},
    )


@router.get(
    "/status",
    response_model=None,
    responses={200: json_reply("CameraStatus", "the camera being followed")},
)
def status(request: Request) -> dict[str, Any]:
    """The camera being followed: source, address (no credentials), state, last error, and the
    frames held in the buffer."""
    return asdict(service_of(request).camera.status())
