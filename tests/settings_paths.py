"""Every setting of the configuration model by its dotted path, for the tests that go through
all of them."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from doormail.settings import Settings


def leaves(
    section: type[BaseModel] = Settings, prefix: str = ""
) -> Iterator[tuple[str, FieldInfo]]:
    """Each setting of `section` as (dotted path, its field), sections opened."""
    for name, info in section.model_fields.items():
        path = prefix + (info.alias or name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from leaves(info.annotation, path + ".")
        else:
            yield path, info


SETTINGS: dict[str, FieldInfo] = dict(leaves())
