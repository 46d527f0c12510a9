"""One device (SPEC 11): its identity, camera, licenses, time zone and event source, validated
with errors that name the field; what the API shows of it (secrets write-only); and the
settings an event of that device is decided under."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from doormail import destinations
from doormail.settings import (
    MAIL_LICENSES,
    Camera,
    License,
    Settings,
    SettingsError,
    SingleLine,
)
from doormail.settings import (
    Device as DeviceSettings,
)

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# The write-only values of a device, as dotted paths; GET shows `<name>_set` instead.
SECRETS = (("source", "password"), ("camera", "password"))


class DeviceError(ValueError):
    """A device that cannot be accepted; `field` names the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _http_url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https:// (the intercom's address)")
    return value.rstrip("/")


class Intercom2N(BaseModel):
    """A 2N intercom whose event log doormail follows (HTTP Digest or Basic)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["2n"]
    url: Annotated[SingleLine, AfterValidator(_http_url)]
    username: SingleLine = ""
    password: str = ""
    verify_certificate: bool = True


class DeviceModel(BaseModel):
    """A device as `/api/devices` takes it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: SingleLine = ""
    serial: SingleLine = ""
    timezone: str = ""  # empty: device.timezone
    camera: Camera = Field(default_factory=Camera)
    licenses: list[License] = Field(default_factory=list)
    source: Intercom2N | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError("must be 1 to 64 of A-Z a-z 0-9 _ . -")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value:
            try:
                DeviceSettings(timezone=value)
            except ValidationError as error:
                raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return value

    @property
    def display_name(self) -> str:
        """`$DeviceName$`: the name, or the id when it has none."""
        return self.name or self.id

    def document(self) -> dict[str, Any]:
        """Everything, secrets included (for storage only)."""
        return self.model_dump(mode="json")

    def public(self) -> dict[str, Any]:
        """As the API shows it: each secret replaced by `<name>_set`, a URL's password `***`."""
        doc = self.document()
        for section, key in SECRETS:
            part = doc.get(section)
            if isinstance(part, dict):
                part[f"{key}_set"] = bool(part.pop(key))
        doc["camera"]["url"] = destinations.mask_url(doc["camera"]["url"])
        return doc


def parse_device(data: object, earlier: DeviceModel | None = None) -> DeviceModel:
    """A device from decoded JSON; a secret left out keeps the `earlier` device's value.
    DeviceError names the first bad field."""
    if not isinstance(data, dict):
        raise DeviceError("device", "must be a JSON object")
    data = _keep_secrets(dict(data), earlier)
    try:
        return DeviceModel.model_validate(data)
    except SettingsError as error:
        raise DeviceError(error.field, error.message) from None
    except ValidationError as error:
        first = error.errors()[0]
        inner = first.get("ctx", {}).get("error")
        if isinstance(inner, SettingsError):  # camera.* checks name their own field
            raise DeviceError(inner.field, inner.message) from None
        field = ".".join(str(part) for part in first["loc"] if part != "2n") or "device"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "is not a field of a device"
        raise DeviceError(field, message) from None


def _keep_secrets(data: dict[str, Any], earlier: DeviceModel | None) -> dict[str, Any]:
    """A secret left out keeps the stored one, but only while it still goes where it went: a
    stored password is not sent to a new address without being given again (SPEC 2)."""
    stored = {} if earlier is None else earlier.document()
    for section, key in SECRETS:
        part, old = data.get(section), stored.get(section)
        if not isinstance(part, dict):
            continue
        data[section] = part = {k: v for k, v in part.items() if k != f"{key}_set"}
        if key in part or not isinstance(old, dict) or not old.get(key):
            continue
        if part.get("url", old.get("url")) != old.get("url"):
            raise DeviceError(
                f"{section}.{key}", f"give the password again for the new {section}.url"
            )
        part[key] = old[key]
    return data


def merged(earlier: DeviceModel, patch: object) -> dict[str, Any]:
    """A PATCH body merged over the stored device (objects merged key by key)."""
    if not isinstance(patch, dict):
        raise DeviceError("device", "must be a JSON object")
    document = earlier.document()
    for section, key in SECRETS:  # given again or kept by parse_device, never carried over
        if isinstance(document.get(section), dict):
            document[section].pop(key, None)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    return document


def licensed(licenses: Sequence[str]) -> bool:
    """Whether the licenses allow the e-mail function (Gold or Enhanced Integration)."""
    return any(license in MAIL_LICENSES for license in licenses)


def settings_for(settings: Settings, device: DeviceModel) -> Settings:
    """The settings an event of `device` is decided under: the shared ones (users, rules,
    templates) with the device's name, serial, licenses, time zone and camera."""
    identity = settings.device.model_copy(
        update={
            "name": device.display_name,
            "serial": device.serial,
            "licenses": list(device.licenses),
            "timezone": device.timezone or settings.device.timezone,
        }
    )
    return settings.model_copy(update={"device": identity, "camera": device.camera})
