"""The settings tabs of the web UI: which settings each tab shows, in which groups and order,
and the conversion of a submitted tab into a settings patch. Each control's label, help, limits
and choices come from the settings model, and a template editor's placeholders from the
placeholder table. Validation is not done here; the patch goes through
`doormail.settings.apply_patch` like any API change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from doormail import placeholders
from doormail.settings import SECRET_PATHS, Described, describe

Control = Literal["text", "email", "number", "checkbox", "select", "secret", "subject", "body"]
_SECRETS = {".".join(path) for path in SECRET_PATHS}


def is_secret(path: str) -> bool:
    return path in _SECRETS


@dataclass(frozen=True)
class Field:
    """One setting as a form control. `path` is its dotted name in the settings document."""

    path: str
    label: str
    help: str
    kind: Control = "text"
    options: tuple[tuple[str, str], ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    # For subject/body editors: the kind of mail they belong to, which the preview shows.
    preview: placeholders.Kind | None = None

    @property
    def id(self) -> str:
        return "f-" + self.path.replace(".", "-").replace("_", "-")

    @property
    def placeholders(self) -> tuple[tuple[str, str], ...]:
        """Each placeholder a body editor offers, with what it stands for in this kind of mail."""
        if self.kind != "body" or self.preview is None:
            return ()
        kind = self.preview
        return tuple(
            (p.token, p.description_for(kind) + (BEYOND_MANUAL if p.beyond_manual else ""))
            for p in placeholders.for_kind(kind)
        )


# How a placeholder doormail adds to the manual's is marked beside its meaning.
BEYOND_MANUAL = " (beyond the manual)"


@dataclass(frozen=True)
class Message:
    """A subject and body editor pair, shown with its placeholders and a live preview."""

    subject: Field
    body: Field

    @property
    def kind(self) -> str:
        return self.body.preview or ""

    @property
    def id(self) -> str:
        return self.body.id.removesuffix("-body")


@dataclass(frozen=True)
class Group:
    """A fieldset of a tab, under a heading (or none)."""

    title: str | None
    fields: tuple[Field, ...]
    note: str | None = None
    collapsed: bool = False

    @property
    def parts(self) -> list[Field | Message]:
        """The fields in order, each subject joined with the body after it."""
        parts: list[Field | Message] = []
        for f in self.fields:
            last = parts[-1] if parts else None
            if f.kind == "body" and isinstance(last, Field) and last.kind == "subject":
                parts[-1] = Message(last, f)
            else:
                parts.append(f)
        return parts


@dataclass(frozen=True)
class Tab:
    slug: str
    title: str
    intro: str
    groups: tuple[Group, ...] = field(default_factory=tuple)

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(f for group in self.groups for f in group.fields)


def setting(
    path: str, kind: Control | None = None, preview: placeholders.Kind | None = None
) -> Field:
    """The control of the setting at `path`, labelled, explained, limited and offering the
    choices the settings model states; `kind` when the model's type does not say it."""
    described = describe(path)
    return Field(
        path,
        described.title,
        _help(described),
        kind or _control(path, described),
        described.choices,
        described.minimum,
        described.maximum,
        preview,
    )


def _control(path: str, described: Described) -> Control:
    if is_secret(path):
        return "secret"
    if described.choices:
        return "select"
    if described.type == "boolean":
        return "checkbox"
    return "number" if described.type == "integer" else "text"


def _help(described: Described) -> str:
    if described.minimum is not None and described.maximum is not None:
        sentence = described.description.removesuffix(".")
        return f"{sentence} ({described.minimum} to {described.maximum})."
    return described.description


def _tab(slug: str, section: str, *groups: Group) -> Tab:
    """A tab under the title of a section of the settings, introduced by its description."""
    described = describe(section)
    return Tab(slug, described.title, described.description, groups)


def _fields(*paths: str) -> tuple[Field, ...]:
    return tuple(setting(path) for path in paths)


def _snapshots(prefix: str) -> Group:
    keys = ("attach", "count", "resolution")
    return Group("Snapshots", _fields(*(f"{prefix}.snapshots.{key}" for key in keys)))


def _message(kind: placeholders.Kind) -> tuple[Field, Field]:
    """The subject and body editors of a kind of mail, where the settings keep them."""
    prefix = placeholders.TEMPLATE_SECTIONS[kind]
    return (
        setting(f"{prefix}.subject", "subject", kind),
        setting(f"{prefix}.body", "body", kind),
    )


SMTP = _tab(
    "smtp",
    "smtp",
    Group(
        None,
        (
            *_fields(
                "smtp.enabled",
                "smtp.server",
                "smtp.port",
                "smtp.security",
                "smtp.verify_certificate",
                "smtp.ca",
                "smtp.username",
                "smtp.password",
                "smtp.certificate",
            ),
            setting("smtp.from", "email"),
            setting("smtp.deliver_in"),
        ),
    ),
    Group(
        "Beyond the manual",
        _fields(
            "smtp.auth",
            "smtp.oauth2.token_url",
            "smtp.oauth2.client_id",
            "smtp.oauth2.client_secret",
            "smtp.oauth2.refresh_token",
            "smtp.oauth2.scope",
            "smtp.dkim.enabled",
            "smtp.dkim.domain",
            "smtp.dkim.selector",
            "smtp.dkim.private_key",
            "smtp.max_message_bytes",
        ),
        collapsed=True,
    ),
)

EMAIL_ON_CALL = _tab(
    "email-on-call",
    "email_on_call",
    Group(None, (*_fields("email_on_call.send", "email_on_call.default_to"), *_message("call"))),
    _snapshots("email_on_call"),
)

EMAIL_ON_ACCESS = _tab(
    "email-on-access",
    "email_on_access",
    Group(
        None,
        (*_fields("email_on_access.send", "email_on_access.default_to"), *_message("access")),
        note="Extended syntax: $AuthIdValid:Valid=platný,Invalid=neplatný$ replaces each value "
        "by its text; a value not in the list is used directly.",
    ),
    _snapshots("email_on_access"),
)


def _event_message(kind: placeholders.Kind) -> Group:
    prefix = placeholders.TEMPLATE_SECTIONS[kind]
    return Group(describe(prefix).title, (setting(f"{prefix}.enabled"), *_message(kind)))


EMAIL_ON_EVENT = _tab(
    "email-on-event",
    "email_on_event",
    Group(None, _fields("email_on_event.to")),
    _event_message("sip_registration_lost"),
    _event_message("device_rebooted"),
    _event_message("tamper"),
    _snapshots("email_on_event"),
)

CAMERA = _tab(
    "camera",
    "camera",
    Group(
        None,
        _fields(
            "camera.source",
            "camera.url",
            "camera.username",
            "camera.password",
            "camera.buffer_seconds",
        ),
    ),
)

DEVICE = _tab(
    "device",
    "device",
    Group(
        None,
        _fields(
            "device.name",
            "device.timezone",
            "device.datetime_format",
            "device.serial",
            "device.licenses",
        ),
    ),
    Group(
        "Limits",
        _fields("limits.per_recipient_per_hour", "limits.access_denied_burst", "licensing.enforce"),
    ),
    Group(
        "MQTT Event Source",
        _fields(
            "sources.mqtt.enabled",
            "sources.mqtt.url",
            "sources.mqtt.topic",
            "sources.mqtt.username",
            "sources.mqtt.password",
            "sources.mqtt.client_id",
        ),
        collapsed=True,
    ),
    Group("Storage", _fields("storage.keep_sent_days", "storage.keep_events_days")),
)

SETTINGS_TABS: dict[str, Tab] = {
    tab.slug: tab for tab in (SMTP, EMAIL_ON_CALL, EMAIL_ON_ACCESS, EMAIL_ON_EVENT, CAMERA, DEVICE)
}


def lookup(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a settings document (None when absent)."""
    node: Any = document
    for key in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def shown_values(tab: Tab, public: Mapping[str, Any]) -> dict[str, Any]:
    """What each control of `tab` shows for the saved settings; a secret shows only whether it
    is set."""
    values: dict[str, Any] = {}
    for f in tab.fields:
        if f.kind == "secret":
            values[f.path] = bool(lookup(public, f.path + "_set"))
        else:
            value = lookup(public, f.path)
            # a list (device.licenses) is edited as comma-separated text
            values[f.path] = ", ".join(value) if isinstance(value, list) else value
    return values


def submitted_values(
    tab: Tab, form: Mapping[str, str], public: Mapping[str, Any]
) -> dict[str, Any]:
    """What each control shows after a refused submission: the text as typed, secrets as saved."""
    values = shown_values(tab, public)
    for f in tab.fields:
        if f.kind == "checkbox":
            values[f.path] = f.path in form
        elif f.kind != "secret" and f.path in form:
            values[f.path] = form[f.path]
    return values


def patch_from_form(tab: Tab, form: Mapping[str, str]) -> dict[str, Any]:
    """The settings patch a submitted tab asks for. Text is passed as typed (the settings model
    converts "587" and names the field of "abc"); an empty secret keeps the stored one."""
    patch: dict[str, Any] = {}
    for f in tab.fields:
        value: Any
        if f.kind == "checkbox":
            value = f.path in form
        elif f.kind == "secret":
            if form.get(f.path + ".clear"):
                value = ""
            elif form.get(f.path):
                value = form[f.path]
            else:
                continue
        elif f.path not in form:
            continue
        elif f.kind == "body":
            value = form[f.path].replace("\r\n", "\n")
        elif f.kind == "number":
            value = form[f.path].strip()
        else:
            value = form[f.path]
        _put(patch, f.path, value)
    return patch


def _put(patch: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = patch
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
