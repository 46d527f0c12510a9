"""Settings that are valid but will not make the mail an installer expects (SPEC section 2,
`GET /api/config/warnings`): mail switched on in a tab while SMTP Service Enabled is off, an
event message with nobody to send it to, pictures attached with no camera. Pure: a function of
the settings, worded with the labels the UI shows (the settings model's titles)."""

from __future__ import annotations

from dataclasses import dataclass

from doormail.settings import Settings, describe

__all__ = ["ConfigWarning", "config_warnings"]

_EVENT_MESSAGES = ("sip_registration_lost", "device_rebooted", "tamper")
_EMAIL_SECTIONS = ("email_on_call", "email_on_access", "email_on_event")


@dataclass(frozen=True)
class ConfigWarning:
    """A setting (dotted path) and what will not happen because of it."""

    field: str
    message: str

    def reply(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def config_warnings(settings: Settings) -> list[ConfigWarning]:
    """Every warning for `settings`, in the order of the UI's tabs."""
    return [
        *_smtp(settings),
        *_call(settings),
        *_access(settings),
        *_event(settings),
        *_snapshots(settings),
    ]


def _label(path: str) -> str:
    return describe(path).title


def _choice(path: str, value: str) -> str:
    return dict(describe(path).choices).get(value, value)


def _tab(section: str) -> str:
    return describe(section).title


def _sending(settings: Settings) -> list[str]:
    """The tabs (sections) that would send mail as they are set."""
    sending = []
    if settings.email_on_call.send != "never":
        sending.append("email_on_call")
    if settings.email_on_access.send != "never":
        sending.append("email_on_access")
    if _enabled_events(settings):
        sending.append("email_on_event")
    return sending


def _enabled_events(settings: Settings) -> list[str]:
    return [name for name in _EVENT_MESSAGES if getattr(settings.email_on_event, name).enabled]


def _smtp(settings: Settings) -> list[ConfigWarning]:
    if settings.smtp.enabled:
        return []
    tabs = ", ".join(_tab(section) for section in _sending(settings))
    sending = f" ({tabs} would send)" if tabs else ""
    message = f"{_label('smtp.enabled')} is off: no event mail will go out until it is ticked"
    return [ConfigWarning("smtp.enabled", message + sending)]


def _off_elsewhere(settings: Settings, field: str) -> list[ConfigWarning]:
    """The warning a sending tab carries while SMTP Service Enabled is off."""
    if settings.smtp.enabled:
        return []
    message = (
        f"{_label('smtp.enabled')} (on the {_tab('smtp')} tab) is off: this tab's mail will"
        " not go out until it is ticked"
    )
    return [ConfigWarning(field, message)]


def _call(settings: Settings) -> list[ConfigWarning]:
    call = settings.email_on_call
    if call.send == "never":
        return []
    warnings = _off_elsewhere(settings, "email_on_call.send")
    if not call.default_to:
        warnings.append(
            ConfigWarning(
                "email_on_call.default_to",
                f"{_label('email_on_call.default_to')} is empty: a call to a number that is not"
                " in the users list, or to a user without e-mail, makes no mail",
            )
        )
    return warnings


def _access(settings: Settings) -> list[ConfigWarning]:
    access = settings.email_on_access
    if access.send == "never":
        return []
    warnings = _off_elsewhere(settings, "email_on_access.send")
    if not access.default_to:
        send = _choice("email_on_access.send", access.send)
        warnings.append(
            ConfigWarning(
                "email_on_access.default_to",
                f"{_label('email_on_access.default_to')} is empty: with"
                f" {_label('email_on_access.send')} “{send}”, a denied card, Bluetooth or"
                " fingerprint (and a user without e-mail) makes no mail",
            )
        )
    return warnings


def _event(settings: Settings) -> list[ConfigWarning]:
    enabled = _enabled_events(settings)
    if not enabled:
        return []
    warnings = _off_elsewhere(settings, f"email_on_event.{enabled[0]}.enabled")
    if not settings.email_on_event.to:
        names = ", ".join(_label(f"email_on_event.{name}.enabled") for name in enabled)
        warnings.append(
            ConfigWarning(
                "email_on_event.to",
                f"{_label('email_on_event.to')} is empty: {names} is ticked but makes no mail",
            )
        )
    return warnings


def _snapshots(settings: Settings) -> list[ConfigWarning]:
    if settings.camera.source != "none":
        return []
    camera = f"{_label('camera.source')} is {_choice('camera.source', 'none')}"
    return [
        ConfigWarning(
            f"{section}.snapshots.attach",
            f"{_label(f'{section}.snapshots.attach')} is ticked, but {camera} (on the"
            f" {_tab('camera')} tab): the mails carry an N/A picture",
        )
        for section in _EMAIL_SECTIONS
        if getattr(settings, section).snapshots.attach
    ]
