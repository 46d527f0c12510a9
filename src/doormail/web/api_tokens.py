"""`/api/tokens`: the API tokens as the admin sees them (name, scope, when made and last used;
never the token) and revoking one. Tokens are made with `doormail token create`, which shows a
new token once."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response

from doormail.web.errors import ApiError
from doormail.web.schemas import json_reply, refusal
from doormail.web.state import service_of

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


@router.get(
    "", response_model=None, responses={200: json_reply("TokenList", "never the tokens themselves")}
)
def list_tokens(request: Request) -> dict[str, Any]:
    return {"items": [asdict(token) for token in service_of(request).accounts.tokens()]}


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "revoked"}, 404: refusal("no token of this name")},
)
def revoke_token(request: Request, name: str) -> Response:
    if not service_of(request).accounts.revoke_token(name):
        raise ApiError(404, "not_found", f"no token named {name!r}", "name")
    return Response(status_code=204)
