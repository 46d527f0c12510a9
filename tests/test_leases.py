"""Source leases (SPEC 11): one holder at a time follows each source; the holder renews its
lease, another takes it only once it ran out or was given back; many leases are taken in one
transaction; a source's state is kept between runs. On SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine

from doormail.store.leases import Leases, SourceStates


def test_one_holder_at_a_time_until_the_lease_runs_out(engine: Engine) -> None:
    first, second = Leases(engine, "first", 20), Leases(engine, "second", 20)
    assert first.take("2n:door-1", now=1000)
    assert not second.take("2n:door-1", now=1010)
    assert first.take("2n:door-1", now=1015)  # renewed until 1035
    assert not second.take("2n:door-1", now=1030)
    assert second.take("2n:door-1", now=1036)  # the first died: taken over
    assert not first.take("2n:door-1", now=1037)


def test_a_lease_given_back_is_taken_at_once(engine: Engine) -> None:
    first, second = Leases(engine, "first"), Leases(engine, "second")
    assert first.take("mqtt")
    assert first.holder_of("mqtt") == "first"
    first.release("mqtt")
    assert second.take("mqtt")
    assert second.holder_of("mqtt") == "second"


def test_many_leases_in_one_go(engine: Engine) -> None:
    first, second = Leases(engine, "first", 20), Leases(engine, "second", 20)
    sources = [f"2n:door-{i}" for i in range(300)]
    assert first.take_all(sources[:200], now=1000) == set(sources[:200])
    assert second.take_all(sources, now=1001) == set(sources[200:])
    assert first.take_all(sources, now=1002) == set(sources[:200])
    assert second.take_all([], now=1003) == set()


def test_a_sources_state_is_kept(engine: Engine) -> None:
    states = SourceStates(engine)
    assert states.load("2n:door-1") is None
    states.save("2n:door-1", '{"last_id": 1}')
    states.save("2n:door-1", '{"last_id": 2}')
    assert states.load("2n:door-1") == '{"last_id": 2}'
