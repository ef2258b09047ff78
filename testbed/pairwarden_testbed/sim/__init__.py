"""A deterministic simulator of a FailoverPair: two members, the API, the operator, faults."""

from pairwarden_testbed.sim.world import Call, RoleChange, Sample, World

__all__ = ["Call", "RoleChange", "Sample", "World"]
