from __future__ import annotations

from typing import Any

from pairwarden.api import FailoverPairSpec, parse_spec


def make_spec(**extra: Any) -> FailoverPairSpec:
    return parse_spec(
        {
            "members": {
                "primary": {"podName": "vm-primary"},
                "secondary": {"podName": "vm-secondary"},
            },
            "service": "voicemail",
            **extra,
        }
    )
