"""Run-failure alerts posted to a webhook (Slack-compatible ``text`` plus structured fields).

Delivery failures are reported to the caller, never raised: an alert channel that is down must
not turn one failure into two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    job: str
    failed_steps: list[str]
    error: str
    partition: str | None = None


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    detail: str  # the HTTP status, or why the post failed


def run_url(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def alert_payload(failure: RunFailure, ui_url: str) -> dict[str, Any]:
    error = failure.error if len(failure.error) <= _MAX_ERROR_CHARS else failure.error[: _MAX_ERROR_CHARS - 1] + "…"
    link = run_url(ui_url, failure.run_id)
    where = f" (partition {failure.partition})" if failure.partition else ""
    steps = ", ".join(failure.failed_steps) or "none recorded"
    headline = error.splitlines()[0] if error else "no error message"
    return {
        "text": f"Hyperion run failed: {failure.job}{where}, step(s) {steps}: {headline} {link}",
        "run_id": failure.run_id,
        "job": failure.job,
        "partition": failure.partition,
        "failed_steps": failure.failed_steps,
        "error": error,
        "run_url": link,
    }


def post_alert(url: str, payload: dict[str, Any], *, timeout_s: float = 10.0) -> Delivery:
    try:
        response = httpx.post(url, json=payload, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        # The type only: the message can quote the URL, and webhook URLs often hold a token.
        return Delivery(False, type(exc).__name__)
    if response.is_success:
        return Delivery(True, f"HTTP {response.status_code}")
    return Delivery(False, f"HTTP {response.status_code}")
