"""`GET /api/sources/mqtt/status` (SPEC 11): the MQTT subscription's status, in the shape of a
device's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from doormail.web.schemas import json_reply
from doormail.web.state import service_of

router = APIRouter(prefix="/api/sources", tags=["devices"])


@router.get(
    "/mqtt/status",
    response_model=None,
    responses={200: json_reply("SourceStatusReply", "the MQTT subscription's state")},
)
def mqtt_status(request: Request) -> dict[str, Any]:
    return service_of(request).mqtt.status.public()
