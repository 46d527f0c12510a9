"""Reaching the running Service from a request, typed."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from doormail.app import Service


def service_of(request: Request) -> Service:
    return cast(Service, request.app.state.service)
