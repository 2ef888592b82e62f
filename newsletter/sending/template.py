"""An issue's message template, as every sender of it builds it (plan.py for the first
sender, worker.py for any that joins): the issue's content, list and markers as recorded."""

from __future__ import annotations

from datetime import datetime

from ..config import Config
from ..message import MessageTemplate, feedback_id, issue_label
from ..personal import PersonalMarkers
from ..signing import load_signer
from ..store.issues import IssueRecord
from ..store.records import ListRecord


def issue_template(
    config: Config, list_record: ListRecord, issue: IssueRecord, *, subject_prefix: str = ""
) -> MessageTemplate:
    """The message exactly as the issue was recorded."""
    return message_template(
        config, list_record, issue.digest, issue.number, issue.created_at,
        subject_prefix + issue.subject, issue.html, issue.text, PersonalMarkers(issue.marker_nonce),
    )


def message_template(
    config: Config,
    list_record: ListRecord,
    digest_name: str,
    number: int,
    created: datetime,
    subject: str,
    html_part: str,
    text_part: str,
    markers: PersonalMarkers,
) -> MessageTemplate:
    return MessageTemplate(
        config,
        list_id=list_record.id,
        list_slug=list_record.slug,
        digest=digest_name,
        label=issue_label(digest_name, number, created),
        subject=subject,
        html_part=html_part,
        text_part=text_part,
        markers=markers,
        signer=load_signer(config),
        feedback_id=feedback_id(config, number, digest_name, list_record.slug),
    )
