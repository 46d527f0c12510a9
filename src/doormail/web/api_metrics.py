"""`GET /metrics`: the service's Prometheus collectors as text (authenticated like every route
but /healthz)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from doormail.metrics import CONTENT_TYPE
from doormail.web.schemas import text_reply
from doormail.web.state import service_of

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: text_reply("text/plain", "Prometheus text format")},
)
def metrics(request: Request) -> Response:
    # A `def` route: the outbox depth is counted in the database while the page is built.
    return Response(service_of(request).metrics.render(), media_type=CONTENT_TYPE)
