"""Authentication and RBAC, on the sandbox and on kube-apiserver 1.20 alike: who may do what is
decided by the token and the Roles, and a refusal reads as the real server's (401 for a token
nobody issued, 403 naming user, verb, resource and scope, the escalation check's list of the
rights a user lacks). Each test acts as a ServiceAccount of its own, with the token the token
controller wrote into its Secret."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .helpers import GROUP, PLURAL, VERSION, wait_for, widget

RBAC = "rbac.authorization.k8s.io"
Client = Callable[[str | None], client.ApiClient]


@pytest.fixture
def as_token(sandbox: Any) -> Iterator[Client]:
    """`as_token(token)`: a client of the server under test sending that bearer token (None:
    none at all), with the admin kubeconfig's address and CA."""
    made: list[client.ApiClient] = []

    def make(token: str | None) -> client.ApiClient:
        cfg = client.Configuration()
        config.load_kube_config(str(sandbox.kubeconfig_path), client_configuration=cfg)
        cfg.refresh_api_key_hook = None  # it would load the kubeconfig's token again
        cfg.api_key = {"BearerToken": f"Bearer {token}"} if token is not None else {}
        made.append(client.ApiClient(cfg))
        return made[-1]

    yield make
    for api in made:
        api.close()


def account_token(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """Create ServiceAccount namespace/name and return its token, from the Secret the token
    controller writes (1.20: at once on the sandbox, within a second or so on the real one)."""
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})

    def token() -> str | None:
        account = core.read_namespaced_service_account(name, namespace)
        for ref in account.secrets or []:
            secret = core.read_namespaced_secret(ref.name, namespace)
            if secret.type == "kubernetes.io/service-account-token" and "token" in (
                secret.data or {}
            ):
                return base64.b64decode(secret.data["token"]).decode()
        return None

    found: str = wait_for(token, 30, f"a token for ServiceAccount {namespace}/{name}")
    return found


def grant(
    api_client: client.ApiClient, namespace: str, account: str, rules: list[dict[str, Any]]
) -> None:
    """A Role with `rules` bound to the account (as admin)."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    name = f"{account}-grant"
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    )


def refusal(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


def lease(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"holderIdentity": "a"}}


def test_a_token_nobody_issued_is_401(as_token: Client, namespace: str) -> None:
    core = client.CoreV1Api(as_token("made-up-token"))
    status, body = refusal(lambda: core.list_namespaced_config_map(namespace))
    assert status == 401
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    status, _ = refusal(lambda: client.VersionApi(as_token("made-up-token")).get_code())
    assert status == 401


def test_no_token_is_anonymous_and_may_read_only_public_information(
    as_token: Client, namespace: str
) -> None:
    """kube-apiserver's default `--anonymous-auth=true`: no token is system:anonymous, whom
    RBAC lets read /version and the health checks, and nothing else."""
    anonymous = as_token(None)
    assert client.VersionApi(anonymous).get_code().major == "1"
    status, body = refusal(
        lambda: client.CoreV1Api(anonymous).list_namespaced_config_map(namespace)
    )
    assert status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        'configmaps is forbidden: User "system:anonymous" cannot list resource "configmaps" in '
        f'API group "" in the namespace "{namespace}"'
    )
    assert body["details"] == {"kind": "configmaps"}
    status, body = refusal(lambda: client.CoreApi(anonymous).get_api_versions())
    assert status == 403
    assert body["message"] == 'forbidden: User "system:anonymous" cannot get path "/api/"'


def test_a_role_naming_one_lease_lets_its_account_update_that_one_only(
    api_client: client.ApiClient, as_token: Client, namespace: str, core: client.CoreV1Api
) -> None:
    admin = client.CoordinationV1Api(api_client)
    for name in ("mine", "theirs"):
        admin.create_namespaced_lease(namespace, lease(name))
    token = account_token(core, namespace, "member")
    grant(
        api_client,
        namespace,
        "member",
        [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": ["mine"],
                "verbs": ["get", "list", "watch", "update"],
            }
        ],
    )
    leases = client.CoordinationV1Api(as_token(token))
    who = f"system:serviceaccount:{namespace}:member"
    wait_for(lambda: _can_read(leases, namespace), 30, "the binding to take effect")
    mine = leases.read_namespaced_lease("mine", namespace)
    mine.spec.holder_identity = "b"
    assert leases.replace_namespaced_lease("mine", namespace, mine).spec.holder_identity == "b"
    # a list selecting only the named Lease is admitted by resourceNames
    only = leases.list_namespaced_lease(namespace, field_selector="metadata.name=mine")
    assert [i.metadata.name for i in only.items] == ["mine"]

    status, body = refusal(lambda: leases.read_namespaced_lease("theirs", namespace))
    assert status == 403
    assert body["message"] == (
        f'leases.coordination.k8s.io "theirs" is forbidden: User "{who}" cannot get resource '
        f'"leases" in API group "coordination.k8s.io" in the namespace "{namespace}"'
    )
    assert body["details"] == {"name": "theirs", "group": "coordination.k8s.io", "kind": "leases"}
    status, _ = refusal(
        lambda: leases.patch_namespaced_lease("mine", namespace, {"spec": {"holderIdentity": "c"}})
    )
    assert status == 403  # update is granted, patch is not
    status, _ = refusal(lambda: leases.list_namespaced_lease(namespace))
    assert status == 403  # a list of all is not one named Lease
    status, _ = refusal(lambda: leases.delete_namespaced_lease("mine", namespace))
    assert status == 403
    status, body = refusal(lambda: leases.read_namespaced_lease("mine", "default"))
    assert status == 403 and 'in the namespace "default"' in body["message"]
    assert admin.read_namespaced_lease("theirs", namespace).spec.holder_identity == "a"


def _can_read(leases: client.CoordinationV1Api, namespace: str) -> bool:
    try:
        leases.read_namespaced_lease("mine", namespace)
    except ApiException as exc:
        if exc.status == 403:
            return False
        raise
    return True


ROLE_WRITER = {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": ["create"]}
LEASE_READER = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}


def _writer(
    api_client: client.ApiClient, as_token: Client, core: client.CoreV1Api, namespace: str,
    rules: list[dict[str, Any]],
) -> client.RbacAuthorizationV1Api:  # fmt: skip
    token = account_token(core, namespace, "writer")
    grant(api_client, namespace, "writer", rules)
    rbac = client.RbacAuthorizationV1Api(as_token(token))

    def bound() -> bool:
        try:
            rbac.create_namespaced_role(
                namespace, {"metadata": {"name": "probe"}, "rules": [LEASE_READER]}
            )
        except ApiException as exc:
            if exc.status == 403:
                return False
            raise
        return True

    wait_for(bound, 30, "the writer's binding to take effect")
    return rbac


def test_a_role_with_rights_its_creator_lacks_is_refused(
    api_client: client.ApiClient, as_token: Client, namespace: str, core: client.CoreV1Api
) -> None:
    rbac = _writer(api_client, as_token, core, namespace, [ROLE_WRITER, LEASE_READER])
    wanted = {
        "apiGroups": ["", "coordination.k8s.io"],
        "resources": ["secrets", "leases"],
        "verbs": ["get", "list"],
    }
    status, body = refusal(
        lambda: rbac.create_namespaced_role(
            namespace, {"metadata": {"name": "more"}, "rules": [wanted]}
        )
    )
    who = f"system:serviceaccount:{namespace}:writer"
    groups = (
        f'["system:serviceaccounts" "system:serviceaccounts:{namespace}" "system:authenticated"]'
    )
    assert status == 403
    assert body["message"] == (
        f'roles.rbac.authorization.k8s.io "more" is forbidden: user "{who}" (groups={groups}) is '
        "attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["leases"], Verbs:["get" "list"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}\n'
        '{APIGroups:["coordination.k8s.io"], Resources:["leases"], Verbs:["list"]}\n'
        '{APIGroups:["coordination.k8s.io"], Resources:["secrets"], Verbs:["get" "list"]}'
    )
    # binding cluster-admin is granting everything
    status, body = refusal(
        lambda: rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "take-all"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": namespace}],
            },
        )
    )
    assert status == 403
    assert body["message"].startswith(
        f'rolebindings.rbac.authorization.k8s.io "take-all" is forbidden: user "{who}"'
    )
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in body["message"]
    # what it holds, it may grant and bind
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "same"}, "rules": [LEASE_READER]})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "same"},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "same"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
        },
    )


def test_escalate_and_bind_let_an_account_grant_what_it_lacks(
    api_client: client.ApiClient, as_token: Client, namespace: str, core: client.CoreV1Api
) -> None:
    rules = [
        ROLE_WRITER,
        LEASE_READER,
        {"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["escalate"]},
        {
            "apiGroups": [RBAC],
            "resources": ["clusterroles"],
            "resourceNames": ["cluster-admin"],
            "verbs": ["bind"],
        },
    ]
    rbac = _writer(api_client, as_token, core, namespace, rules)
    secrets = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "more"}, "rules": [secrets]})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "admin-here"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
        },
    )
    # `bind` names cluster-admin only: binding the Role it may not hold stays refused
    status, _ = refusal(
        lambda: rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "more"},
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "more"},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
            },
        )
    )
    assert status == 403


def test_a_deleted_account_s_token_stops_working(
    api_client: client.ApiClient, as_token: Client, namespace: str, core: client.CoreV1Api
) -> None:
    token = account_token(core, namespace, "gone")
    version = client.VersionApi(as_token(token))
    assert version.get_code().major == "1"
    core.delete_namespaced_service_account("gone", namespace)

    def refused() -> bool:
        try:
            version.get_code()
        except ApiException as exc:
            return exc.status == 401
        return False

    wait_for(refused, 30, "the deleted account's token to be refused")


def test_a_status_subresource_and_a_group_of_accounts_are_granted_as_named(
    api_client: client.ApiClient,
    as_token: Client,
    namespace: str,
    core: client.CoreV1Api,
    widgets: client.CustomObjectsApi,
) -> None:
    """`widgets/status` grants the status and not the object; a ClusterRole bound in one
    namespace to the group of its ServiceAccounts grants every account there, there only."""
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("w"))
    rbac = client.RbacAuthorizationV1Api(api_client)
    name = f"{namespace}-status-writer"
    rules = [{"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]}]
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
    try:
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "accounts"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
                "subjects": [
                    {"kind": "Group", "name": f"system:serviceaccounts:{namespace}",
                     "apiGroup": RBAC}
                ],
            },
        )  # fmt: skip
        as_member = client.CustomObjectsApi(as_token(account_token(core, namespace, "any")))
        status = {"status": {"phase": "Ready"}}

        def patched() -> bool:
            try:
                as_member.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, "w", status
                )
            except ApiException as exc:
                if exc.status == 403:
                    return False
                raise
            return True

        wait_for(patched, 30, "the group binding to take effect")
        code, body = refusal(
            lambda: as_member.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "w", {"spec": {"size": "large"}}
            )
        )
        assert code == 403
        assert f'cannot patch resource "{PLURAL}" in API group "{GROUP}"' in body["message"]
        code, body = refusal(
            lambda: as_member.patch_namespaced_custom_object_status(
                GROUP, VERSION, "default", PLURAL, "w", status
            )
        )
        assert code == 403
        assert f'cannot patch resource "{PLURAL}/status"' in body["message"]
    finally:
        rbac.delete_cluster_role(name)


def test_a_pod_runs_as_an_existing_account_with_its_token_mounted(
    namespace: str, core: client.CoreV1Api
) -> None:
    """The ServiceAccount admission plugin: a pod names an account that exists (`default`
    unless it says), gets its token Secret mounted at the ServiceAccount path in each
    container that mounts nothing there, and none when it turns automounting off."""
    mount = "/var/run/secrets/kubernetes.io/serviceaccount"
    container = {"name": "c", "image": "pairwarden/agent:dev"}

    def pod(name: str, **spec: Any) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}

    status, body = refusal(
        lambda: core.create_namespaced_pod(namespace, pod("lost", serviceAccountName="nobody"))
    )
    assert status == 403
    assert body["message"] == (
        f'pods "lost" is forbidden: error looking up service account {namespace}/nobody: '
        'serviceaccount "nobody" not found'
    )
    made = core.create_namespaced_pod(namespace, pod("plain")).spec
    assert made.service_account_name == "default"
    (mounted,) = [m for m in made.containers[0].volume_mounts if m.mount_path == mount]
    (volume,) = [v for v in made.volumes if v.name == mounted.name]
    secret = core.read_namespaced_secret(volume.secret.secret_name, namespace)
    assert secret.type == "kubernetes.io/service-account-token" and "token" in secret.data
    quiet = core.create_namespaced_pod(namespace, pod("quiet", automountServiceAccountToken=False))
    assert not quiet.spec.containers[0].volume_mounts and not quiet.spec.volumes
