"""Hints in the UI's words: the settings' keys that the API and the command line show become
the labels and choices of the tabs, read from the settings model."""

from __future__ import annotations

import pytest

from doormail.delivery.errors import CA_HINT
from doormail.web.ui_words import in_ui_words


@pytest.mark.parametrize(
    ("keys", "labels"),
    [
        (
            "port 2465 speaks implicit TLS: set smtp.security to tls",
            "port 2465 speaks implicit TLS: set Security to “Implicit TLS”",
        ),
        (CA_HINT, "choose the CA set that signed it in CA Certificate, or upload it to ca1..3"),
        ("check smtp.port and smtp.security", "check Server Port and Security"),
        (
            "is required when smtp.enabled is true",
            "is required when SMTP Service Enabled is ticked",
        ),
        ("give smtp.oauth2.client_secret again", "give OAuth2 Client Secret again"),
        ("lower smtp.max_message_bytes.", "lower Maximum Message Size."),
        ("email_on_event.to is empty", "Send to E-Mail Address is empty"),
        ("no setting here: smtp.", "no setting here: smtp."),
    ],
)
def test_settings_keys_become_the_labels_of_the_tabs(keys: str, labels: str) -> None:
    assert in_ui_words(keys) == labels
