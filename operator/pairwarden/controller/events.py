"""Kubernetes Events on the FailoverPair: every transition and warning, its cause the reason.

Posting goes through kopf's own queue (`kopf.event`), which batches, retries and never blocks
the reconciler on the API server.
"""

from __future__ import annotations

from typing import Any

import kopf

from pairwarden.controller import metrics


def normal(body: Any, reason: str, message: str) -> None:
    kopf.event(body, type="Normal", reason=reason, message=message)


def warning(body: Any, reason: str, message: str) -> None:
    meta = body["metadata"]
    metrics.WARNINGS.labels(meta["namespace"], meta["name"], reason).inc()
    kopf.event(body, type="Warning", reason=reason, message=message)
