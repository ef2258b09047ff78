"""Prometheus metrics of one agent (own registry, so tests can run several agents)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

from pairwarden import __version__


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.answering = Gauge(
            "pairwarden_agent_answering",
            "1 while the fencing rule lets this member answer",
            registry=r,
        )
        self.service_up = Gauge(
            "pairwarden_agent_service_up",
            "1 while the voicemail process answers its health check",
            registry=r,
        )
        self.epoch = Gauge("pairwarden_agent_epoch", "active-Lease epoch acted on", registry=r)
        self.renewal_age = Gauge(
            "pairwarden_agent_renewal_age_seconds",
            "seconds since the last successful renewal was sent",
            registry=r,
        )
        self.renewals = Counter(
            "pairwarden_agent_renewals", "member Lease writes by result", ["result"], registry=r
        )
        self.role_orders = Counter(
            "pairwarden_agent_role_orders",
            "role orders sent to the voicemail process",
            ["active"],
            registry=r,
        )
        self.cpu = Gauge(
            "pairwarden_agent_cpu_ratio",
            "sampled CPU of the pod as a ratio (the member report's percent / 100)",
            registry=r,
        )
        self.cpu_excessive = Gauge(
            "pairwarden_agent_cpu_excessive", "1 while CPU is judged excessive", registry=r
        )
        self.failsafe = Gauge(
            "pairwarden_agent_failsafe",
            "1 while this member answers past its fence deadline on its peer's promise",
            registry=r,
        )
        self.relayed = Gauge(
            "pairwarden_agent_relayed",
            "1 while this standby's heartbeat rides the holder's renewal (it writes no Lease)",
            registry=r,
        )
        self.calls = Gauge("pairwarden_agent_calls_in_progress", "calls in progress", registry=r)
        # a counter (exposed as ..._total): the voicemail process's count only grows
        self.inactive_calls = Counter(
            "pairwarden_agent_inactive_calls", "calls that arrived while standby", registry=r
        )
        self._inactive_seen = 0
        self.licensing_expired = Gauge(
            "pairwarden_agent_licensing_expired", "1 when the licensing clocks ran out", registry=r
        )
        Info("pairwarden_build", "the running pairwarden's version", registry=r).info(
            {"version": __version__, "component": "agent"}
        )

    def count_inactive_calls(self, total: int) -> None:
        """Advance the counter to the voicemail process's running total (a restarted process
        starts again from 0: only growth is counted)."""
        if total > self._inactive_seen:
            self.inactive_calls.inc(total - self._inactive_seen)
        self._inactive_seen = total
