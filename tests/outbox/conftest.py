"""The outbox under test: its queue and its admin view on the same database (SQLite, then
PostgreSQL), quick to compute back-off without jitter, and counted metrics."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from doormail.metrics import Metrics
from doormail.outbox import Admin, Queue, RetryPolicy


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def queue(engine: Engine, metrics: Metrics) -> Queue:
    return Queue(engine, policy=RetryPolicy(floor=5, ceiling=600, jitter=0), metrics=metrics)


@pytest.fixture
def admin(engine: Engine) -> Admin:
    return Admin(engine)
