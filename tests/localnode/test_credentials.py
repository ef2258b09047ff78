"""The rig's choice of a process's credential (pairwarden_testbed/credentials.py), pure parts."""

from __future__ import annotations

import base64

from pairwarden_testbed.credentials import SA_MOUNT, kubeconfig_as, mounted_token_secret

CLUSTER = {"server": "https://127.0.0.1:1", "certificate-authority": "/ca"}
ADMIN = {
    "clusters": [{"name": "c", "cluster": CLUSTER}],
    "users": [{"name": "admin", "user": {"token": "admin-token"}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "admin"}}],
    "current-context": "x",
}  # fmt: skip


def test_a_process_acts_as_its_token_and_never_keeps_the_admin_one() -> None:
    mine = kubeconfig_as(ADMIN, ("sa-token", b""))
    assert mine["users"][0]["user"] == {"token": "sa-token"}
    assert mine["clusters"] == ADMIN["clusters"]  # no CA of its own: the server's stays
    nobody = kubeconfig_as(ADMIN, None)
    assert nobody["users"][0]["user"] == {}
    assert ADMIN["users"][0]["user"] == {"token": "admin-token"}  # the input is untouched


def test_a_token_with_its_ca_replaces_the_cluster_ca() -> None:
    cluster = kubeconfig_as(ADMIN, ("t", b"PEM"))["clusters"][0]["cluster"]
    assert cluster["certificate-authority-data"] == base64.b64encode(b"PEM").decode()
    assert "certificate-authority" not in cluster


def test_only_the_containers_mounting_the_token_get_it() -> None:
    """What the identity work needs: an agent container mounting the token, a voicemail
    container mounting nothing at the ServiceAccount path."""
    spec = {
        "volumes": [{"name": "tok", "secret": {"secretName": "vm-agent-token-x"}}],
        "containers": [
            {"name": "voicemail", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "agent", "volumeMounts": [{"name": "tok", "mountPath": SA_MOUNT + "/"}]},
        ],
    }
    assert mounted_token_secret(spec, "agent") == "vm-agent-token-x"
    assert mounted_token_secret(spec, "voicemail") is None
