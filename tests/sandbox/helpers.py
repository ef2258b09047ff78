"""Shared helpers of the sandbox conformance suite: the test-only `Widget` CRD and polling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from pairwarden_testbed.waiting import eventually as wait_for  # these tests' name

GROUP, VERSION, PLURAL = "test.pairwarden.io", "v1", "widgets"
KUBECTL = str(Path(sys.executable).with_name("kubectl"))

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["color"],
                                "properties": {
                                    "color": {"type": "string", "pattern": "^[a-z]+$"},
                                    "size": {
                                        "type": "string",
                                        "enum": ["small", "large"],
                                        "default": "small",
                                    },
                                    "replicas": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": 10,
                                        "default": 1,
                                    },
                                    "tags": {
                                        "type": "array",
                                        "maxItems": 3,
                                        "items": {"type": "string", "minLength": 1},
                                    },
                                    "members": {
                                        "type": "object",
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self.primary != self.secondary",
                                                "message": "must differ from primary",
                                                "fieldPath": ".secondary",
                                            }
                                        ],
                                        "properties": {
                                            "primary": {"type": "string"},
                                            "secondary": {"type": "string"},
                                        },
                                    },
                                    "mode": {
                                        "type": "string",
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self == oldSelf",
                                                "message": "mode is immutable",
                                            }
                                        ],
                                    },
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string", "enum": ["Ready", "Failed"]},
                                    "observed": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


CEL_SINCE = (1, 25)  # x-kubernetes-validations: evaluated from Kubernetes 1.25 (beta, on)


def skip_without_cel(api: client.ApiClient) -> None:
    """Skip, naming the reason, on a server too old to evaluate CEL rules: it drops the
    field from the CRD silently and accepts what the rules would refuse."""
    info = client.VersionApi(api).get_code()
    version = (int(info.major), int("".join(ch for ch in info.minor if ch.isdigit())))
    if version < CEL_SINCE:
        pytest.skip(
            "CEL validation rules (x-kubernetes-validations) need Kubernetes "
            f"{CEL_SINCE[0]}.{CEL_SINCE[1]}+; this server is {info.git_version}"
        )


def install_crd(api: client.ApiClient, body: dict[str, Any]) -> None:
    """Create a CRD (or keep the existing one) and wait until its resource is served."""
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
    group, version = body["spec"]["group"], body["spec"]["versions"][0]["name"]
    plural = body["spec"]["names"]["plural"]

    def served() -> bool:
        try:
            listing = client.CustomObjectsApi(api).get_api_resources(group, version)
        except ApiException:
            return False
        return any(r.name == plural for r in listing.resources)

    wait_for(served, 30, f"{plural}.{group} to be served")


def bearer(kubeconfig: Path) -> dict[str, str]:
    """The Authorization header of a kubeconfig's (first) user: raw HTTP as that user."""
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    return {"Authorization": f"Bearer {user['token']}"}


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"color": "red", **spec},
    }


def install_pairwarden_crd(kubeconfig: Path) -> None:
    """Install the FailoverPair CRD as the README tells a user of Kubernetes < 1.25 to:
    `pairwarden crds --without-cel --output - | kubectl apply -f -` (the sandbox installs
    crds/ itself). Waits until the resource is served."""
    import subprocess

    from pairwarden.api import crd

    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "apply", "-f", "-"],
        input=crd.render(cel=False),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    from kubernetes import config

    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        install_crd(api, yaml.safe_load(crd.render(cel=False)))


def peering_crd(plural: str, kind: str, scope: str) -> dict[str, Any]:
    """kopf's peering CRD (kopfpeerings or clusterkopfpeerings), as kopf documents it."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "scope": scope,
            "group": "kopf.dev",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
