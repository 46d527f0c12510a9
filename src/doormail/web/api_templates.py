"""`/api/templates/preview` (SPEC section 5): a kind of mail's saved (or given, unsaved)
subject and body rendered with sample values, as the recipient would see them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from doormail.compose import html_document, preview_pictures, text_body
from doormail.placeholders import (
    KINDS,
    MARKUP,
    TEMPLATE_SECTIONS,
    preview_values,
    template_kind,
    templates_for,
)
from doormail.settings import MAX_BODY, MAX_SUBJECT, Settings, Snapshots
from doormail.templates import render
from doormail.web.errors import ApiError
from doormail.web.schemas import json_reply, refusal
from doormail.web.state import service_of

router = APIRouter(prefix="/api/templates", tags=["templates"])


class PreviewRequest(BaseModel):
    """The body of `POST /api/templates/preview`, for templates too long for a query string."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(json_schema_extra={"enum": list(KINDS)})
    subject: str | None = Field(None, max_length=MAX_SUBJECT)
    body: str | None = Field(None, max_length=MAX_BODY)


_PREVIEW: dict[int | str, dict[str, Any]] = {
    200: json_reply("Preview", "subject, HTML part and text part with sample values"),
    422: refusal("an unknown kind, or a template too long"),
}


@router.get("/preview", response_model=None, responses=_PREVIEW)
async def preview(
    request: Request,
    kind: Annotated[str, Query(json_schema_extra={"enum": list(KINDS)})],
    subject: Annotated[str | None, Query(max_length=MAX_SUBJECT)] = None,
    body: Annotated[str | None, Query(max_length=MAX_BODY)] = None,
) -> dict[str, Any]:
    """`{"kind", "subject", "html", "text"}`: `html` is the complete `text/html` part and
    `text` the `text/plain` part made from it. `subject`/`body` preview unsaved templates."""
    settings = await run_in_threadpool(service_of(request).settings.load)
    return render_preview(settings, kind, subject, body)


@router.post("/preview", response_model=None, responses=_PREVIEW)
async def preview_posted(request: Request, given: PreviewRequest) -> dict[str, Any]:
    settings = await run_in_threadpool(service_of(request).settings.load)
    return render_preview(settings, given.kind, given.subject, given.body)


def render_preview(
    settings: Settings, kind: str, subject: str | None, body: str | None
) -> dict[str, Any]:
    """The preview of `kind` under `settings`, with the placeholders' sample values and the
    device's own name and current time."""
    try:
        known = template_kind(kind)
    except ValueError as error:
        raise ApiError(422, "validation", str(error), "kind") from None
    saved_subject, saved_body = templates_for(settings, known)
    values = preview_values(known, settings, datetime.now(UTC))
    subject_template = saved_subject if subject is None else subject
    rendered_subject = render(subject_template, values, html=False, markup=MARKUP)
    rendered_body = render(saved_body if body is None else body, values, html=True, markup=MARKUP)
    shown = preview_pictures(rendered_body, _pictures_of(settings, known))
    return {
        "kind": kind,
        "subject": rendered_subject,
        "html": html_document(shown, title=rendered_subject),
        "text": text_body(rendered_body),
    }


def _pictures_of(settings: Settings, kind: str) -> int:
    """How many snapshots a mail of `kind` carries under `settings`."""
    section = TEMPLATE_SECTIONS[template_kind(kind)].split(".")[0]
    snapshots = getattr(settings, section).snapshots
    assert isinstance(snapshots, Snapshots)
    return snapshots.count if snapshots.attach else 0
