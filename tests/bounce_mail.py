"""Inbound messages for the tests, in the shapes real MTAs and feedback loops write them:
a DSN as Postfix writes it (RFC 3464), an ARF report (RFC 5965), an unsubscribe mail as a
mail client sends our List-Unsubscribe mailto link, a vacation notice (RFC 3834)."""

from __future__ import annotations

from email.utils import formatdate
from urllib.parse import unquote


def dsn(
    to: str,
    recipient: str,
    status: str,
    diagnostic: str,
    original: bytes,
    *,
    envelope_id: str | None = None,
    message_id: str = "<20261102120000.4F2A1C0123@mx.example.net>",
) -> bytes:
    """A Postfix-style DSN to `to` (the envelope sender of `original`) about `recipient`."""
    action = "delayed" if status.startswith("4") else "failed"
    headers_only = original.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    envid = f"Original-Envelope-Id: {envelope_id}\r\n" if envelope_id else ""
    return (
        f"Return-Path: <>\r\n"
        f"Date: {formatdate()}\r\n"
        f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"To: {to}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="B1"\r\n'
        f"Message-Id: {message_id}\r\n\r\n"
        f"This is a MIME-encapsulated message.\r\n\r\n"
        f"--B1\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients.\r\n\r\n"
        f"<{recipient}>: {diagnostic}\r\n\r\n"
        f"--B1\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\nX-Postfix-Queue-ID: 4F2A1C0123\r\n{envid}"
        f"Arrival-Date: {formatdate()}\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mail.example.com\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        f"--B1\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{headers_only}\r\n\r\n--B1--\r\n"
    ).encode()


def arf(original: bytes, *, return_path: str | None, to: str = "fbl@example.org") -> bytes:
    """A spam complaint of a mailbox provider's feedback loop, returning the whole original
    (with the Return-Path the receiving MTA wrote, when given)."""
    returned = (f"Return-Path: <{return_path}>\r\n".encode() if return_path else b"") + original
    return (
        f"From: Feedback Loop <fbl@mailbox.example.com>\r\n"
        f"To: {to}\r\nDate: {formatdate()}\r\nSubject: Email Feedback Report\r\n"
        f"Message-ID: <fbl-{abs(hash(original))}@mailbox.example.com>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="F1"\r\n\r\n'
        f"--F1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
        f"--F1\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\nSource-IP: 192.0.2.25\r\n\r\n"
        f"--F1\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
    ).encode() + returned + b"\r\n--F1--\r\n"


def mailto_unsubscribe(list_unsubscribe: str, sender: str) -> bytes:
    """What a mail client sends for the mailto: of a List-Unsubscribe header."""
    mailto = list_unsubscribe.split("<mailto:", 1)[1].split(">", 1)[0]
    address, _, query = mailto.partition("?")
    subject = unquote(query.removeprefix("subject="))
    return (
        f"From: {sender}\r\nTo: {address}\r\nSubject: {subject}\r\nDate: {formatdate()}\r\n"
        f"Message-ID: <unsub-{abs(hash(subject))}@example.org>\r\n\r\n"
    ).encode()


def vacation(sender: str, to: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Out of Office: Test Weekly #1\r\n"
        f"Auto-Submitted: auto-replied\r\nDate: {formatdate()}\r\n"
        f"Message-ID: <away-{abs(hash(sender))}@example.org>\r\n\r\nI am away until Monday.\r\n"
    ).encode()
