"""pairwarden's test rig: what the tests and the demo run instead of a cluster, never shipped
in the operator or agent images.

The sandbox API server, the local kubelet / kube-proxy / Job runner stand-ins, the reference
voicemail process and SIP caller, the deterministic simulator, the demo, and the launcher of a
real control plane. The product (`pairwarden`) never imports this package.
"""
