"""The operator: kopf handlers that observe, ask the engine, and apply its actions.

One module per Kubernetes resource it touches (leases, pods, services, events, status), an
observation book fed by the member Leases' watch, and `reconcile` that ties them together.
"""
