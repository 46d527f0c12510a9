"""The SpamAssassin scorer the tests use (tests/spamassassin.py) tells a plain notice from spam."""

from __future__ import annotations

from collections.abc import Callable

from tests.spamassassin import Score, parse

NOTICE = (
    b"From: Front door <door@example.org>\r\n"
    b"To: desk@example.com\r\n"
    b"Subject: Missed call at Front door\r\n"
    b"Date: Sun, 29 Nov 2026 19:00:00 +0000\r\n"
    b"Message-ID: <20261129190000.ev-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Nobody answered the call to Alice at 19:00.\r\n"
)
# The Generic Test for Unsolicited Bulk Email: every SpamAssassin scores it 1000.
GTUBE = NOTICE.replace(
    b"Nobody answered", b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"
)


def test_a_plain_notice_scores_low(spamassassin: Callable[[bytes], Score]) -> None:
    scored = spamassassin(NOTICE)
    assert scored.total < 1.0, scored.report
    assert scored.required == 5.0


def test_the_spam_test_string_scores_as_spam_with_its_rule(
    spamassassin: Callable[[bytes], Score],
) -> None:
    scored = spamassassin(GTUBE)
    assert scored.total >= 1000
    assert "GTUBE" in scored.rules


def test_the_report_is_read_rule_by_rule() -> None:
    report = (
        "Content analysis details:   (1.3 points, 5.0 required)\n\n"
        " pts rule name              description\n"
        "---- ---------------------- --------------------------------------------------\n"
        "-0.0 NO_RELAYS              Informational: message was not relayed via SMTP\n"
        " 1.3 HTML_IMAGE_ONLY_04     BODY: HTML: images with 0-400 bytes of\n"
        "                            words\n"
    )
    scored = parse(report)
    assert scored.total == 1.3
    assert scored.rules == {"NO_RELAYS": -0.0, "HTML_IMAGE_ONLY_04": 1.3}
    assert scored.descriptions["HTML_IMAGE_ONLY_04"] == "BODY: HTML: images with 0-400 bytes of"
