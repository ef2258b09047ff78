"""The pure failover engine: `decide(spec, observed, now) -> Decision` and its data types."""

from pairwarden.engine.core import (
    decide,
    is_held,
    judge,
    licence_deadline,
    scheduled_failback_due,
    settings_drift,
)
from pairwarden.engine.types import (
    DISCRETIONARY,
    AckRequest,
    Action,
    Activate,
    Cause,
    Deactivate,
    Decision,
    ManualRequest,
    MemberObservation,
    Now,
    Observed,
    UpdateStatus,
    Warn,
)

__all__ = [
    "DISCRETIONARY",
    "AckRequest",
    "Action",
    "Activate",
    "Cause",
    "Deactivate",
    "Decision",
    "ManualRequest",
    "MemberObservation",
    "Now",
    "Observed",
    "UpdateStatus",
    "Warn",
    "decide",
    "is_held",
    "judge",
    "licence_deadline",
    "scheduled_failback_due",
    "settings_drift",
]
