"""`/api/smtp/test`: Apply & Test over HTTP (SPEC section 8) — start a run, read its log, or
follow it live as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from doormail.applytest import SmtpTests, TestRun, TooManyRuns
from doormail.web.errors import ApiError
from doormail.web.schemas import json_reply, refusal, text_reply
from doormail.web.state import service_of
from doormail.web.ui_words import in_ui_words

router = APIRouter(prefix="/api/smtp/test", tags=["smtp"])


class TestRequest(BaseModel):
    """The test address and, optionally, SMTP settings not saved yet."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    to: str = Field(json_schema_extra={"format": "email"})
    smtp: dict[str, Any] = Field(default_factory=dict)


def _tests(request: Request) -> SmtpTests:
    return service_of(request).smtp_tests


def _run(request: Request, run_id: str) -> TestRun:
    run = _tests(request).get(run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no Apply & Test run {run_id!r}", "id")
    return run


_NO_RUN = refusal("no Apply & Test run has this id")
# How the log names the settings: by their keys (smtp.ca), or by the web UI's labels.
Labels = Annotated[
    Literal["keys", "ui"],
    Query(description="keys: settings named by key (smtp.ca); ui: by the web UI's labels"),
]


def _worded(line: dict[str, Any]) -> dict[str, Any]:
    return {**line, "message": in_ui_words(line["message"])}


@router.post(
    "",
    status_code=202,
    response_model=None,
    responses={
        202: json_reply("TestStarted", "the run's id; follow it at /api/smtp/test/{id}"),
        422: refusal("a bad address or SMTP setting"),
        429: refusal("the most runs allowed at once are still going"),
    },
)
async def start_test(request: Request, body: TestRequest) -> dict[str, str]:
    """202 with the run's id; 429 while the most runs allowed at once are still going."""
    try:
        run = _tests(request).start(body.to, body.smtp)
    except TooManyRuns as error:
        raise ApiError(429, "too_many_requests", str(error)) from None
    return {"id": run.id}


@router.get(
    "/{run_id}",
    response_model=None,
    responses={200: json_reply("TestStatus", "the run's state and log"), 404: _NO_RUN},
)
async def test_status(request: Request, run_id: str, labels: Labels = "keys") -> dict[str, Any]:
    status = _run(request, run_id).public()
    if labels == "ui":
        status["log"] = [_worded(line) for line in status["log"]]
    return status


@router.get(
    "/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        200: text_reply("text/event-stream", "each log line as a `log` event, then `end`"),
        404: _NO_RUN,
    },
)
async def test_events(request: Request, run_id: str, labels: Labels = "keys") -> StreamingResponse:
    run = _run(request, run_id)
    return StreamingResponse(
        _events(run, labels == "ui"),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(run: TestRun, ui: bool) -> AsyncIterator[str]:
    number = 0
    async for line in run.follow():
        number += 1
        shown = _worded(line.public()) if ui else line.public()
        yield f"id: {number}\nevent: log\ndata: {json.dumps(shown)}\n\n"
    warnings = [warning.reply() for warning in run.warnings]
    yield f"event: end\ndata: {json.dumps({'state': run.state, 'warnings': warnings})}\n\n"
