"""Charlie commands: whether the marts know an instance, and the call to its instance API."""

from __future__ import annotations

from typing import Any, Literal

from resources.settings import Settings
from streaming.data.serving import Serving

Outcome = Literal["accepted", "rejected", "failed"]


def instance_known(data: Serving, instance_id: str) -> bool:
    return bool(data.marts.query("select 1 as found from dim_charlie_instances where charlie_instance_id = %(id)s",
                                 {"id": instance_id}))


def send_command(settings: Settings, command_id: str, instance_id: str, command: str, args: dict[str, Any],
                 requested_by: str) -> tuple[Outcome, int | None, Any, str | None]:
    """POST the command to the instance's API: (outcome, its HTTP status, its JSON body, the error)."""
    headers = {"Idempotency-Key": command_id}
    if settings.charlie_api_token:
        headers["Authorization"] = f"Bearer {settings.charlie_api_token}"
    url = f"{settings.charlie_base_url}/instances/{instance_id}/commands"
    http_status, result, error = None, None, None
    import httpx  # here, not at the top: its import (rich, click for its CLI) slowed every sidecar start

    try:
        # Not retried: a command is not idempotent on every instance; the key lets one dedupe.
        reply = httpx.post(url, json={"id": command_id, "command": command, "args": args,
                                      "requested_by": requested_by}, headers=headers, timeout=settings.http_timeout_s)
        http_status = reply.status_code
        try:
            result = reply.json()
        except ValueError:
            result = reply.text[:2000]
        status: Outcome = "accepted" if reply.is_success else "rejected" if reply.is_client_error else "failed"
        if not reply.is_success:
            error = f"the instance API answered {reply.status_code}"
    except httpx.HTTPError as exc:
        status, error = "failed", f"the instance API did not answer: {type(exc).__name__}: {exc}"
    return status, http_status, result, error
