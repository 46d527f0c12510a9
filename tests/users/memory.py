"""The users list held in memory, for the tests of the stages that only ask who an event's number
or identifier belongs to (the rules, the pipeline): the store's own index, built from a list,
with no database."""

from __future__ import annotations

from doormail.users.index import UsersIndex as UsersInMemory

__all__ = ["UsersInMemory"]
