"""The settings tabs of the web UI: each setting under the manual's label with a one-line help
text, and the conversion of a submitted tab into a settings patch. Validation is not done here;
the patch goes through `doormail.settings.apply_patch` like any API change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from doormail.settings import RESOLUTIONS, SECRET_PATHS

Kind = Literal["text", "email", "number", "checkbox", "select", "secret", "subject", "body"]

# The preview kinds of GET /api/templates/preview and the placeholders each one knows.
PLACEHOLDERS: dict[str, tuple[tuple[str, str], ...]] = {
    "call": (
        ("$User$", "Called username (empty when the call went to several users at once)"),
        ("$DateTime$", "Current date and time"),
        ("$DialNumber$", "Called number"),
        ("$DeviceName$", "Intercom identification"),
    ),
    "access": (
        ("$User$", "User name"),
        ("$DateTime$", "Current date and time"),
        ("$AuthId$", "User authentication ID"),
        ("$DeviceName$", "Intercom identification"),
        ("$AuthIdType$", "Authentication type: Card, Bluetooth or Fingerprint"),
        ("$AuthIdValid$", "Identifier validity: Valid or Invalid"),
    ),
    "event": (
        ("$User$", "User name"),
        ("$DateTime$", "Current date and time"),
        ("$DeviceName$", "Intercom identification"),
    ),
}


@dataclass(frozen=True)
class Field:
    """One setting as a form control. `path` is its dotted name in the settings document."""

    path: str
    label: str
    help: str
    kind: Kind = "text"
    options: tuple[tuple[str, str], ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    # For subject/body editors: the preview kind they belong to.
    preview: str | None = None

    @property
    def id(self) -> str:
        return "f-" + self.path.replace(".", "-").replace("_", "-")

    @property
    def placeholders(self) -> tuple[tuple[str, str], ...]:
        if self.kind != "body" or self.preview is None:
            return ()
        return PLACEHOLDERS[self.preview if self.preview in ("call", "access") else "event"]


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


_RESOLUTION_OPTIONS = tuple((r, r.replace("x", " × ")) for r in RESOLUTIONS)
_COUNT = (1, 5)


def _snapshots(prefix: str, attach: str, count: str, with_count: bool = True) -> Group:
    fields = [
        Field(
            f"{prefix}.snapshots.attach",
            attach,
            "Attach one or more camera snapshots taken during ringing or calling.",
            "checkbox",
        )
    ]
    if with_count:
        fields.append(
            Field(
                f"{prefix}.snapshots.count",
                count,
                "How many snapshots to attach to the e-mail message (1 to 5).",
                "number",
                minimum=_COUNT[0],
                maximum=_COUNT[1],
            )
        )
    fields.append(
        Field(
            f"{prefix}.snapshots.resolution",
            "Snapshot Resolution",
            "The resolution of the images sent.",
            "select",
            _RESOLUTION_OPTIONS,
        )
    )
    return Group("Snapshots", tuple(fields))


def _message(prefix: str, kind: str, body_label: str = "Body") -> tuple[Field, Field]:
    return (
        Field(
            f"{prefix}.subject",
            "Subject",
            "The e-mail subject; placeholders are replaced before sending.",
            "subject",
            preview=kind,
        ),
        Field(
            f"{prefix}.body",
            body_label,
            "The text to be sent; HTML formatting marks may be used.",
            "body",
            preview=kind,
        ),
    )


SMTP = Tab(
    "smtp",
    "SMTP",
    "Where and how the e-mails are sent. Apply & Test saves the settings and sends a test e-mail.",
    (
        Group(
            None,
            (
                Field(
                    "smtp.enabled",
                    "SMTP Service Enabled",
                    "Enable or disable sending e-mails.",
                    "checkbox",
                ),
                Field(
                    "smtp.server", "Server Address", "The SMTP server's host name or IP address."
                ),
                Field(
                    "smtp.port",
                    "Server Port",
                    "The SMTP server port; typically 25, 587 for submission, 465 for implicit TLS.",
                    "number",
                    minimum=1,
                    maximum=65535,
                ),
                Field(
                    "smtp.security",
                    "Security",
                    "Auto: implicit TLS on port 465, otherwise STARTTLS when offered.",
                    "select",
                    (
                        ("auto", "Auto"),
                        ("starttls", "STARTTLS"),
                        ("tls", "Implicit TLS"),
                        ("none", "None (plain text)"),
                    ),
                ),
                Field(
                    "smtp.verify_certificate",
                    "Verify Server Certificate",
                    "Check the server's certificate and host name.",
                    "checkbox",
                ),
                Field(
                    "smtp.ca",
                    "CA Certificate",
                    "The CA certificates the server's certificate is checked against.",
                    "select",
                    (("system", "System"), ("ca1", "CA1"), ("ca2", "CA2"), ("ca3", "CA3")),
                ),
                Field(
                    "smtp.username",
                    "Username",
                    "Login for SMTP authentication; leave empty if the server needs none.",
                ),
                Field("smtp.password", "Password", "The SMTP server login password.", "secret"),
                Field(
                    "smtp.certificate",
                    "User Certificate",
                    "The client certificate and key shown to the server (see Certificates).",
                    "select",
                    (
                        ("self-signed", "SelfSigned"),
                        ("user1", "User1"),
                        ("user2", "User2"),
                        ("user3", "User3"),
                    ),
                ),
                Field("smtp.from", "From Address", "The sender address of every e-mail.", "email"),
                Field(
                    "smtp.deliver_in",
                    "Deliver In",
                    "Seconds to keep retrying an unreachable server (60 to 604800 = 7 days).",
                    "number",
                    minimum=60,
                    maximum=604800,
                ),
            ),
        ),
        Group(
            "Beyond the manual",
            (
                Field(
                    "smtp.auth",
                    "Authentication",
                    "Password, or OAuth 2.0 (XOAUTH2) for Microsoft 365 and Gmail.",
                    "select",
                    (("password", "Password"), ("xoauth2", "OAuth 2.0 (XOAUTH2)")),
                ),
                Field(
                    "smtp.oauth2.token_url", "OAuth2 Token URL", "Where access tokens are fetched."
                ),
                Field(
                    "smtp.oauth2.client_id", "OAuth2 Client ID", "The registered application's ID."
                ),
                Field(
                    "smtp.oauth2.client_secret",
                    "OAuth2 Client Secret",
                    "The application's secret.",
                    "secret",
                ),
                Field(
                    "smtp.oauth2.refresh_token",
                    "OAuth2 Refresh Token",
                    "Exchanged for access tokens before they expire.",
                    "secret",
                ),
                Field(
                    "smtp.oauth2.scope",
                    "OAuth2 Scope",
                    "The scope asked for, if the provider needs one.",
                ),
                Field("smtp.dkim.enabled", "DKIM Signing", "DKIM-sign each message.", "checkbox"),
                Field("smtp.dkim.domain", "DKIM Domain", "The signing domain (d=)."),
                Field("smtp.dkim.selector", "DKIM Selector", "The DNS selector (s=)."),
                Field(
                    "smtp.dkim.private_key",
                    "DKIM Private Key",
                    "The PEM private key for the selector.",
                    "secret",
                ),
                Field(
                    "smtp.max_message_bytes",
                    "Maximum Message Size",
                    "Bytes; snapshots are scaled down, then dropped, to stay below it.",
                    "number",
                    minimum=100000,
                ),
            ),
            collapsed=True,
        ),
    ),
)

EMAIL_ON_CALL = Tab(
    "email-on-call",
    "E-Mail on Call",
    "An e-mail after every outgoing call, sent when the connection is terminated.",
    (
        Group(
            None,
            (
                Field(
                    "email_on_call.send",
                    "Send E-Mail to User at",
                    "Which ended outgoing calls send an e-mail to the called user.",
                    "select",
                    (
                        ("never", "Do Not Send E-mail"),
                        ("any", "Any Outgoing Call"),
                        ("missed", "Missed Outgoing Call"),
                    ),
                ),
                Field(
                    "email_on_call.default_to",
                    "Default To",
                    "Used when the called user has no e-mail; several addresses separated by commas.",
                ),
                *_message("email_on_call", "call"),
            ),
        ),
        _snapshots("email_on_call", "Attach Snapshots", "Number of Snapshots Attached"),
    ),
)

EMAIL_ON_ACCESS = Tab(
    "email-on-access",
    "E-Mail on Access",
    "An e-mail when a card, Bluetooth or fingerprint identification is made at the reader.",
    (
        Group(
            None,
            (
                Field(
                    "email_on_access.send",
                    "Send E-Mail at",
                    "Which access attempts send an e-mail.",
                    "select",
                    (
                        ("never", "Do Not Send E-Mail"),
                        ("all", "All Accesses"),
                        ("denied", "Denied Accesses"),
                    ),
                ),
                Field(
                    "email_on_access.default_to",
                    "Default To",
                    "For invalid identifiers and users without e-mail; addresses separated by commas.",
                ),
                *_message("email_on_access", "access"),
            ),
            note="Extended syntax: $AuthIdValid:Valid=platný,Invalid=neplatný$ replaces each value "
            "by its text; a value not in the list is used directly.",
        ),
        _snapshots("email_on_access", "Attach Snapshots", "Number of Snapshots Attached"),
    ),
)


def _event_message(key: str, title: str, option: str, kind: str, help_text: str) -> Group:
    prefix = f"email_on_event.{key}"
    return Group(
        title,
        (
            Field(f"{prefix}.enabled", option, help_text, "checkbox"),
            *_message(prefix, kind, "E-Mail Body"),
        ),
    )


EMAIL_ON_EVENT = Tab(
    "email-on-event",
    "E-Mail on Event",
    "An e-mail when the SIP registration gets lost, the device is rebooted or the tamper switch "
    "is activated.",
    (
        Group(
            None,
            (
                Field(
                    "email_on_event.to",
                    "Send to E-Mail Address",
                    "Where the event messages go; several addresses separated by commas.",
                ),
            ),
        ),
        _event_message(
            "sip_registration_lost",
            "SIP Registration Lost Message",
            "SIP Registration Lost",
            "sip_registration_lost",
            "Send a message whenever the SIP registration gets lost.",
        ),
        _event_message(
            "device_rebooted",
            "Device Restart Message",
            "Device Rebooted",
            "device_rebooted",
            "Send a message whenever the device is restarted.",
        ),
        _event_message(
            "tamper",
            "Tamper Activated Message",
            "Tamper Switch Activation",
            "tamper",
            "Send a message whenever the tamper switch is activated.",
        ),
        _snapshots(
            "email_on_event", "Attach Camera Snapshots", "Count of Snapshots to Be Attached"
        ),
    ),
)

CAMERA = Tab(
    "camera",
    "Camera",
    "Where the snapshots attached to the e-mails come from.",
    (
        Group(
            None,
            (
                Field(
                    "camera.source",
                    "Camera Source",
                    "None sends an N/A image; HTTP fetches a snapshot URL; MJPEG and RTSP read a stream.",
                    "select",
                    (
                        ("none", "None"),
                        ("http", "HTTP snapshot"),
                        ("mjpeg", "MJPEG stream"),
                        ("rtsp", "RTSP stream"),
                    ),
                ),
                Field(
                    "camera.url",
                    "Camera URL",
                    "The snapshot URL (HTTP) or the stream URL (MJPEG, RTSP).",
                ),
                Field(
                    "camera.username", "Camera Username", "Login for the camera, if it needs one."
                ),
                Field("camera.password", "Camera Password", "The camera's password.", "secret"),
                Field(
                    "camera.buffer_seconds",
                    "Buffer Length",
                    "Seconds of pictures kept, so snapshots can cover the ringing (1 to 600).",
                    "number",
                    minimum=1,
                    maximum=600,
                ),
            ),
        ),
    ),
)

DEVICE = Tab(
    "device",
    "Device",
    "The intercom identification and time used in the messages, and limits beyond the manual.",
    (
        Group(
            None,
            (
                Field("device.name", "Device Name", "Intercom identification: $DeviceName$."),
                Field(
                    "device.timezone",
                    "Time Zone",
                    "IANA time zone for $DateTime$, e.g. Europe/Prague.",
                ),
                Field(
                    "device.datetime_format",
                    "Date and Time Format",
                    "strftime codes for $DateTime$, e.g. %d.%m.%Y %H:%M.",
                ),
            ),
        ),
        Group(
            "Limits",
            (
                Field(
                    "limits.per_recipient_per_hour",
                    "Mails per Recipient per Hour",
                    "0 = no cap; above it, mails are held and sent as one digest each hour.",
                    "number",
                    minimum=0,
                ),
                Field(
                    "limits.access_denied_burst",
                    "Denied Access Burst",
                    "0 = off; after N denied accesses within a minute, one summary mail.",
                    "number",
                    minimum=0,
                ),
                Field(
                    "licensing.enforce",
                    "Enforce Licensing",
                    "Mail only for devices with the Gold or Enhanced Integration license.",
                    "checkbox",
                ),
            ),
        ),
        Group(
            "MQTT Event Source",
            (
                Field(
                    "sources.mqtt.enabled", "MQTT Enabled", "Receive events over MQTT.", "checkbox"
                ),
                Field("sources.mqtt.url", "Broker URL", "e.g. mqtt://127.0.0.1:1883."),
                Field(
                    "sources.mqtt.topic",
                    "Topic",
                    "Each message is one event; + matches the device.",
                ),
                Field("sources.mqtt.username", "MQTT Username", "Login for the broker, if needed."),
                Field("sources.mqtt.password", "MQTT Password", "The broker password.", "secret"),
            ),
            collapsed=True,
        ),
    ),
)

SETTINGS_TABS: dict[str, Tab] = {
    tab.slug: tab for tab in (SMTP, EMAIL_ON_CALL, EMAIL_ON_ACCESS, EMAIL_ON_EVENT, CAMERA, DEVICE)
}

_SECRETS = {".".join(path) for path in SECRET_PATHS}


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
            values[f.path] = lookup(public, f.path)
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


def is_secret(path: str) -> bool:
    return path in _SECRETS
