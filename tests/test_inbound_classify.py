"""Classifying real bounce and complaint messages written by others (tests/fixtures/bounces,
see NOTES.md there): every file is read without an exception, flufl.bounce's own
expectations for its corpus hold, DSN status codes are the ones the Status fields carry,
and hostile or broken messages are `unknown` or a plain reading, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.inbound.classify import (
    AUTOREPLY,
    BOUNCE,
    COMPLAINT,
    HARD,
    SOFT,
    UNKNOWN,
    UNSUBSCRIBE,
    Finding,
    classify,
    parse,
)

CORPUS = Path(__file__).parent / "fixtures" / "bounces"
ALL_FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".txt", ".eml"))

# flufl.bounce 6.0.0's expectations for its own corpus (tests/test_detectors.py, DETECTORS:
# file -> the addresses its detectors find, and whether they are temporary failures), one
# entry per file with the addresses of all its detectors.
EXPECTED = {
    "aol_01.txt": (('screenname@aol.com',), False),
    "bounce_02.txt": (('userx@example.com',), False),
    "bounce_03.txt": (('userx@example.uk',), False),
    "caiwireless_01.txt": (('userx@example.com',), False),
    "dsn_01.txt": (('userx@example.com',), False),
    "dsn_02.txt": (('zzzzz@example.uk',), False),
    "dsn_03.txt": (('userx@example.be',), False),
    "dsn_04.txt": (('userx@example.ch',), False),
    "dsn_05.txt": (('userx@example.cz',), True),
    "dsn_06.txt": (('userx@example.com',), True),
    "dsn_07.txt": (('userx@example.nz',), True),
    "dsn_08.txt": (('userx@example.de',), True),
    "dsn_09.txt": (('userx@example.com',), False),
    "dsn_10.txt": (('anne.person@dom.ain',), False),
    "dsn_11.txt": (('joem@example.com',), False),
    "dsn_12.txt": (('userx@example.jp',), False),
    "dsn_13.txt": (('userx@example.com',), False),
    "dsn_14.txt": (('userx@example.com.dk',), False),
    "dsn_15.txt": (('userx@example.com',), False),
    "dsn_16.txt": (('userx@example.com',), False),
    "dsn_17.txt": (('userx@example.fi',), True),
    "dsn_18.txt": (('email@replaced.net',), False),
    "exim_01.txt": (('userx@its.example.nl',), False),
    "groupwise_01.txt": (('userx@example.EDU',), False),
    "groupwise_02.txt": (('userx@example.com',), False),
    "groupwise_03.txt": ((), False),
    "hotpop_01.txt": (('userx@example.com',), False),
    "llnl_01.txt": (('user1@example.gov',), False),
    "microsoft_01.txt": (('userx@example.COM',), False),
    "microsoft_02.txt": (('userx@example.COM',), False),
    "microsoft_03.txt": (('userx@example.com',), False),
    "microsoft_04.txt": (('userx@example.COM',), False),
    "netscape_01.txt": (('aaaaa@corel.com', 'bbbbb@corel.com'), False),
    "newmailru_01.txt": (('zzzzz@newmail.ru',), False),
    "postfix_01.txt": (('xxxxx@local.ie',), False),
    "postfix_02.txt": (('yyyyy@digicool.com',), False),
    "postfix_03.txt": (('ttttt@ggggg.com',), False),
    "postfix_04.txt": (('userx@mail1.example.com',), False),
    "postfix_05.txt": (('userx@example.net',), False),
    "qmail_01.txt": (('userx@example.de',), False),
    "qmail_02.txt": (('userx@example.com',), False),
    "qmail_03.txt": (('userx@example.jp',), False),
    "qmail_04.txt": (('userx@example.au',), False),
    "qmail_05.txt": (('userx@example.com',), False),
    "qmail_06.txt": (('ntl@xxx.com',), False),
    "qmail_07.txt": (('user@example.net',), False),
    "qmail_08.txt": ((), False),
    "sendmail_01.txt": (('zzzzz@nfg.nl', 'zzzzz@shaft.coal.nl'), False),
    "simple_01.txt": (('bbbsss@example.com',), False),
    "simple_02.txt": (('userx@example.net',), False),
    "simple_03.txt": (('userx@example.za',), True),
    "simple_04.txt": (('userx@example.com',), False),
    "simple_05.txt": (('userx@example.net',), False),
    "simple_06.txt": (('userx@example.com',), False),
    "simple_07.txt": (('userx@example.net',), False),
    "simple_08.txt": (('userx@example.de',), False),
    "simple_09.txt": (('userx@example.de',), False),
    "simple_10.txt": (('userx@example.com',), False),
    "simple_11.txt": (('userx@example.com',), False),
    "simple_12.txt": (('userx@example.ac.jp',), False),
    "simple_13.txt": (('userx@example.fr',), False),
    "simple_14.txt": (('userx@example.com', 'usery@example.com'), False),
    "simple_15.txt": (('userx@example.be',), False),
    "simple_16.txt": (('userx@example.com',), False),
    "simple_17.txt": (('userx@example.com',), False),
    "simple_18.txt": (('userx@example.com',), False),
    "simple_19.txt": (('userx@example.com.ar',), False),
    "simple_20.txt": (('userx@example.com',), False),
    "simple_21.txt": (('userx@example.com',), True),
    "simple_22.txt": (('User@example.org',), True),
    "simple_23.txt": (('userx@example.it',), False),
    "simple_24.txt": (('userx@example.com',), False),
    "simple_25.txt": (('userx@example.com',), False),
    "simple_26.txt": (('userx@example.it',), False),
    "simple_27.txt": (('userx@example.net.py',), False),
    "simple_28.txt": (('userx@example.com',), True),
    "simple_29.txt": (('userx@example.com',), False),
    "simple_30.txt": (('userx@example.com',), False),
    "simple_31.txt": (('userx@example.fr',), False),
    "simple_32.txt": (('userx@example.com',), False),
    "simple_33.txt": (('userx@example.com',), False),
    "simple_34.txt": (('roland@example.com',), False),
    "simple_35.txt": (('calvin@example.com',), True),
    "simple_36.txt": (('userx@example.com',), False),
    "simple_37.txt": (('user@example.edu',), False),
    "simple_38.txt": (('userx@example.com',), False),
    "simple_39.txt": (('userx@example.ru',), False),
    "simple_40.txt": (('user@example.com',), True),
    "simple_41.txt": (('userx@example.com',), False),
    "simple_42.txt": ((), False),
    "simple_43.txt": ((), False),
    "simple_44.txt": (('user@example.com',), False),
    "simple_45.txt": (('subscriber@earthlink.net',), False),
    "sina_01.txt": (('userx@sina.com', 'usery@sina.com'), False),
    "smtp32_01.txt": (('userx@example.ph',), False),
    "smtp32_02.txt": (('userx@example.com',), False),
    "smtp32_03.txt": (('userx@example.com',), False),
    "smtp32_04.txt": (('after_another@example.net', 'one_bad_address@example.net'), False),
    "smtp32_05.txt": (('userx@example.com',), False),
    "smtp32_06.txt": (('Absolute_garbage_addr@example.net',), False),
    "smtp32_07.txt": (('userx@example.com',), False),
    "yahoo_01.txt": (('userx@example.com',), False),
    "yahoo_02.txt": (('userx@example.es',), False),
    "yahoo_03.txt": (('userx@example.com',), False),
    "yahoo_04.txt": (('userx@example.es', 'usery@example.uk'), False),
    "yahoo_05.txt": (('userx@example.com', 'usery@example.com'), False),
    "yahoo_06.txt": (('usera@example.com', 'userx@example.com', 'usery@example.com', 'userz@example.com'), False),
    "yahoo_07.txt": (('userw@example.com', 'userx@example.com', 'usery@example.com', 'userz@example.com'), False),
    "yahoo_08.txt": (('usera@example.com', 'userb@example.com', 'userc@example.com', 'userd@example.com', 'usere@example.com', 'userf@example.com'), False),
    "yahoo_09.txt": (('userx@example.com', 'usery@example.com'), False),
    "yahoo_10.txt": (('userx@example.com', 'usery@example.com', 'userz@example.com'), False),
    "yahoo_11.txt": (('bad_user@aol.com',), False),
    "yahoo_12.txt": (('user@yahoo.com',), False),
    "yahoo_13.txt": (('bogus-address@example.net',), False),
    "yale_01.txt": (('userx@cs.yale.edu', 'userx@yale.edu'), False),
}

# Where this project reads a file differently from flufl.bounce, on purpose.
DISAGREES_WITH_FLUFL = {
    # "Action: failed" with "Status: 4.4.7" (expired): flufl.bounce calls it permanent; here the
    # status class decides, as the policy says (4.x.x is a soft bounce).
    "dsn_02.txt": "soft",
    # A Gmail DSN that names "david...@gmail.com" (the address shortened): read as a DSN
    # recipient; it is no address, so it can never match a subscriber.
    "simple_42.txt": "bounce",
}


def read(path: Path) -> Finding:
    return classify(parse(path.read_bytes()))


def addresses(finding: Finding) -> set[str]:
    return {a.lower() for report in finding.recipients for a in report.addresses}


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_file_is_read_without_an_exception(path: Path) -> None:
    finding = read(path)
    assert finding.kind in (BOUNCE, COMPLAINT, UNSUBSCRIBE, AUTOREPLY, UNKNOWN)
    if finding.kind == BOUNCE:
        assert finding.recipients and all(r.severity in (HARD, SOFT) for r in finding.recipients)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_flufl_bounce_expectations_hold(name: str) -> None:
    expected, temporary = EXPECTED[name]
    finding = read(CORPUS / "flufl-bounce" / name)
    if name in DISAGREES_WITH_FLUFL:
        assert {finding.kind, *(r.severity for r in finding.recipients)} >= {DISAGREES_WITH_FLUFL[name]}
        return
    if not expected:
        assert finding.kind != BOUNCE, finding
        return
    assert finding.kind == BOUNCE
    assert {a.lower() for a in expected} <= addresses(finding)
    assert {r.severity for r in finding.recipients} == {SOFT if temporary else HARD}


# (file, failed recipient, status, severity): read off each file's Status field (or, without
# one, its Diagnostic-Code; without either, from its Action).
DSN_STATUSES = [
    ("bounce_email/tt_1234285668.eml", "agrisa@one.lv", "5.0.0", HARD),
    ("bounce_email/tt_1234177688.eml", "aaaaagggrrriiiizz@inbox.lv", "5.7.1", HARD),
    ("bounce_email/tt_1234175799.eml", "agris.ameriks@amerimailzzz.lv", "5.4.4", HARD),
    ("bounce_email/tt_bounce_23.eml", "Rihards_Freimanis@exigengroup.com", "5.1.1", HARD),
    ("bounce_email/tt_bounce_10.eml", "info.rietumuradio.lv@mail.studio7.lv", "4.0.0", SOFT),
    ("bounced/empty-status.eml", "recipient@example.com", "5.0.0", HARD),
    ("bounced/longer-status.eml", "joem@example.com", "5.1.10", HARD),
    ("bounced/local-address.eml", "recipient@example.com", "4.0.0", SOFT),
    ("flufl-bounce/dsn_14.txt", "userx@example.com.dk", "5.1.1", HARD),  # from Diagnostic-Code
    ("flufl-bounce/dsn_03.txt", "userx@example.be", "5.0.0", HARD),  # "Status: 553 ...", "Action: failure"
    ("flufl-bounce/dsn_17.txt", "xxx@example.fi", "4.3.0", SOFT),
    ("rfc/dsn-rfc3464-c4.eml", "louisl@larry.slip.umd.edu", "4.0.0", SOFT),
]


@pytest.mark.parametrize(("name", "address", "status", "severity"), DSN_STATUSES)
def test_dsn_status_codes_come_from_the_status_fields(
    name: str, address: str, status: str, severity: str
) -> None:
    finding = read(CORPUS / name)
    assert finding.kind == BOUNCE
    [report] = [r for r in finding.recipients if r.address == address]
    assert (report.status, report.severity) == (status, severity)


def test_a_dsn_keeps_the_diagnostic_the_envelope_id_and_the_returned_message_id() -> None:
    finding = read(CORPUS / "bounce_email/tt_1234285668.eml")
    assert finding.recipients[0].diagnostic == "552 Account(s) <agrisa@one.lv> does not have enough space"
    assert finding.returned.message_id == "<20090210170747.7895C329E32@Albanis-3.local>"
    assert read(CORPUS / "flufl-bounce/dsn_04.txt").envelope_id == "0GFP00202Q2DR3@mailhub.unibas.ch"


def test_original_recipient_is_kept_beside_the_final_one() -> None:
    [report] = read(CORPUS / "flufl-bounce/dsn_17.txt").recipients
    assert report.addresses == ("xxx@example.fi", "userx@example.fi")


@pytest.mark.parametrize(
    "name", ["rfc/arf-rfc5965-b2.eml", "bounce_email/bounce-auto-respond.eml"]
)
def test_arf_abuse_reports_are_complaints(name: str) -> None:
    assert read(CORPUS / name).kind == COMPLAINT


def test_the_rfc_5965_report_names_the_complaining_recipient_and_the_original() -> None:
    finding = read(CORPUS / "rfc/arf-rfc5965-b2.eml")
    assert [r.address for r in finding.recipients] == ["user@example.com"]
    assert finding.returned.message_id == "8787KJKJ3K4J3K4J3K4J3.mail@example.net"


def test_a_feedback_report_that_is_not_a_complaint_is_unknown() -> None:
    raw = (CORPUS / "rfc/arf-rfc5965-b2.eml").read_bytes().replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    finding = classify(parse(raw))
    assert finding.kind == UNKNOWN and "not-spam" in finding.note


def test_delivery_reports_without_failures_are_not_bounces() -> None:
    raw = (CORPUS / "rfc/dsn-rfc3464-c4.eml").read_bytes()
    delivered = raw.replace(b"Action: failed", b"Action: delivered").replace(b"Status: 4.0.0", b"Status: 2.0.0")
    finding = classify(parse(delivered))
    assert finding.kind == UNKNOWN and finding.note == "a delivery report without failures"


@pytest.mark.parametrize(
    "name", ["bounce_email/non_bounces/tt_1234210666.eml", "bounce_email/non_bounces/tt_1234241664.eml"]
)
def test_ordinary_mail_is_unknown(name: str) -> None:
    assert read(CORPUS / name).kind == UNKNOWN


def test_vacation_notices_are_autoreplies() -> None:
    assert read(CORPUS / "bounce_email/non_bounces/tt_1234211024.eml").kind == AUTOREPLY
    vacation = (
        b"From: Ann <ann@example.org>\r\nTo: news@example.org\r\nSubject: Out of Office: Test Weekly #3\r\n"
        b"Auto-Submitted: auto-replied\r\nMessage-ID: <v1@example.org>\r\n\r\nI am away until Monday.\r\n"
    )
    assert classify(parse(vacation)).kind == AUTOREPLY


def test_an_unsubscribe_mail_carries_the_token_of_the_link() -> None:
    mail = b"From: ann@example.org\r\nTo: leave@example.org\r\nSubject: unsubscribe abc_DEF-1.xyz-2\r\n\r\n"
    finding = classify(parse(mail))
    assert (finding.kind, finding.unsubscribe_token) == (UNSUBSCRIBE, "abc_DEF-1.xyz-2")


HOSTILE = {
    "empty": b"",
    "binary": bytes(range(256)) * 40,
    "headers only": b"Subject: x\r\nContent-Type: multipart/report; report-type=delivery-status\r\n",
    "bad boundary": b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"\r\n\r\n--\r\n",
    "status part without blocks": (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n--b--\r\n"
    ),
    "recipient without address": (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        b"Final-Recipient: rfc822; <>\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
    ),
    "report without feedback part": (
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n\r\nspam\r\n--b--\r\n"
    ),
    "non-ascii headers": "Subject: Rückläufer \udcff\r\nFrom: ü@ö\r\n\r\nx".encode("utf-8", "surrogateescape"),
    "huge header": b"Subject: " + b"x" * 200_000 + b"\r\n\r\nbody",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_messages_never_raise(name: str) -> None:
    finding = classify(parse(HOSTILE[name]))
    assert finding.kind in (UNKNOWN, AUTOREPLY)


@pytest.mark.parametrize("cut", [0.25, 0.5, 0.75])
def test_truncated_dsns_are_read_as_far_as_they_go(cut: float) -> None:
    raw = (CORPUS / "bounce_email/tt_1234210655.eml").read_bytes()
    finding = classify(parse(raw[: int(len(raw) * cut)]))
    assert finding.kind in (BOUNCE, UNKNOWN)
    if finding.kind == BOUNCE:
        assert addresses(finding) == {"this_doesnotexistinaac@accenture.com"}
