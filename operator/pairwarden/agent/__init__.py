"""The member agent sidecar: renews its member Lease with a report, obeys the active Lease,
and fences its voicemail process by its own clock (docs/protocol.md).

`core` is the pure part (what to report, whether to answer); `kubeio`, `voicemail_client`,
`cpu` and `state` are thin adapters; `runner` ties them together; `main` is the CLI.
"""
