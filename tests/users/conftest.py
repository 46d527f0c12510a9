"""The users list under test: the service's, in a fresh data folder."""

from __future__ import annotations

import pytest

from doormail.app import Service
from doormail.users.store import UserStore


@pytest.fixture
def users(service: Service) -> UserStore:
    return service.users
