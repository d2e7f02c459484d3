"""Where a report goes: its folder under `$CC_DATA_DIR/reports/<kind>/<first day>/` (replaced whole,
atomically), a copy in the lake when CC_LAKE_URL points elsewhere (S3 or another folder), and an
e-mail to CC_REPORT_TO with the HTML as its body and the PDF and XLSX attached.

The e-mail goes once per period: a sent-marker (`reports/.sent/<kind>-<first day>.json`, outside
the period's folder so a re-render keeps it) says it went, to whom and with which Message-ID; a
re-materialization sends again only when asked (`resend`).
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from cc_assets.reports.data import Period
from resources.settings import Settings
from resources.storage.tiers import TierStore

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def folder_of(settings: Settings, period: Period) -> Path:
    return settings.reports_dir / period.kind / period.key


def write_folder(target: Path, files: dict[str, bytes]) -> Path:
    """Make `target` hold exactly `files`: written into a hidden folder beside it, then renamed into
    place (the old folder moved aside for the instant between the two renames, then removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    old = target.parent / f".{target.name}.{uuid.uuid4().hex}.old"
    tmp.mkdir()
    try:
        for name, data in files.items():
            with (tmp / name).open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return target


def copy_to_lake(settings: Settings, period: Period, files: dict[str, bytes]) -> str | None:
    """With CC_LAKE_URL set, the report's files under `<lake>/reports/<kind>/<first day>/` too (each
    file written beside its target and moved over it); its URL. Unset: None (the lake is the local
    folder the reports already sit beside)."""
    if not settings.lake_url:
        return None
    store = TierStore.from_settings(settings)
    for name, data in files.items():
        store.write_bytes(store.path("reports", period.kind, period.key, name), data)
    return f"{store.url.rstrip('/')}/reports/{period.kind}/{period.key}/"


def link(settings: Settings, period: Period, lake_url: str | None, name: str = "report.html") -> str:
    """Where a reader opens the report: under CC_REPORT_BASE_URL, else the lake copy, else the file."""
    if settings.report_base_url:
        return f"{settings.report_base_url.rstrip('/')}/{period.kind}/{period.key}/{name}"
    if lake_url:
        return lake_url + name
    return str(folder_of(settings, period) / name)


# E-mail -------------------------------------------------------------------------------------------
def marker_path(settings: Settings, period: Period) -> Path:
    return settings.reports_dir / ".sent" / f"{period.kind}-{period.key}.json"


@dataclass(frozen=True)
class Delivery:
    sent: bool
    reason: str
    to: tuple[str, ...] = ()
    message_id: str | None = None


def message(settings: Settings, subject: str, page: str, attachments: dict[str, bytes], link_to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = settings.report_from
    msg["To"] = ", ".join(settings.report_to)
    msg["Message-ID"] = make_msgid(domain=settings.report_from.rpartition("@")[2] or "localhost")
    msg.set_content(f"{subject}\n\nOpen the report: {link_to}\nThe PDF and the spreadsheet are attached.\n")
    msg.add_alternative(page, subtype="html")
    for name, data in attachments.items():
        maintype, subtype = ("application", "pdf") if name.endswith(".pdf") else XLSX.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def send(settings: Settings, msg: EmailMessage) -> None:
    timeout = settings.smtp_timeout_s
    if settings.smtp_ssl:
        server: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout,
                                               context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with server:
        if settings.smtp_starttls and not settings.smtp_ssl:
            server.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            server.login(settings.smtp_user, settings.smtp_password or "")
        server.send_message(msg)


def email(settings: Settings, period: Period, subject: str, files: dict[str, bytes], link_to: str,
          resend: bool = False) -> Delivery:
    """E-mail the report once per period (again with `resend`), recording that it went."""
    if not settings.report_to:
        return Delivery(False, "CC_REPORT_TO is not set")
    marker = marker_path(settings, period)
    if marker.exists() and not resend:
        sent = json.loads(marker.read_text())
        return Delivery(False, f"already sent at {sent['sent_at']} to {', '.join(sent['to'])} (resend: true sends "
                               "again)", tuple(sent["to"]), sent.get("message_id"))
    msg = message(settings, subject, files["report.html"].decode(), {
        f"operations-{period.kind}-{period.key}.pdf": files["report.pdf"],
        f"operations-{period.kind}-{period.key}.xlsx": files["report.xlsx"]}, link_to)
    send(settings, msg)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{marker.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps({"to": list(settings.report_to), "message_id": msg["Message-ID"],
                               "sent_at": datetime.now(UTC).isoformat(timespec="seconds")}))
    os.replace(tmp, marker)
    return Delivery(True, "sent", settings.report_to, msg["Message-ID"])
