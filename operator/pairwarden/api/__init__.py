"""The FailoverPair API: pydantic models (the one source of truth) and the CRD made from them."""

from pairwarden.api.models import (
    FailoverPair,
    FailoverPairSpec,
    FailoverPairStatus,
    SpecError,
    parse_spec,
    parse_status,
)

__all__ = [
    "FailoverPair",
    "FailoverPairSpec",
    "FailoverPairStatus",
    "SpecError",
    "parse_spec",
    "parse_status",
]
