import sys
from pathlib import Path

from pairwarden_testbed.localnode.podspec import command_line, expand


def test_variable_references_expand_like_the_kubelets() -> None:
    env = {"POD_INDEX": "1", "NAME": "vm"}
    assert expand("--priority=$(POD_INDEX)", env) == "--priority=1"
    assert expand("$(MISSING)-$(NAME)", env) == "$(MISSING)-vm"  # undefined: left as written
    assert expand("$$(NAME)", env) == "$(NAME)"  # $$ escapes


def test_a_pairwarden_image_without_a_command_runs_its_entrypoint() -> None:
    container = {"name": "operator", "image": "pairwarden/operator:dev",
                 "args": ["operator", "--priority=$(POD_INDEX)"]}  # fmt: skip
    argv = command_line(container, [], {"POD_INDEX": "0"})
    assert argv == [sys.executable, "-m", "pairwarden.cli", "operator", "--priority=0"]


def test_a_mount_over_the_interpreters_directory_rewrites_only_the_containers_paths() -> None:
    # A fresh clone under /tmp with an emptyDir at /tmp (the chart's) must keep its python.
    over = str(Path(sys.executable).parent)
    container = {"name": "op", "image": "pairwarden/operator:dev",
                 "args": ["operator", f"{over}/x"]}  # fmt: skip
    argv = command_line(container, [(over, "/host/volumes/tmp")])
    assert argv[0] == sys.executable and argv[-1] == "/host/volumes/tmp/x"


def test_loopback_in_args_and_env_is_the_pods_own_address() -> None:
    """Two local pods share this machine's loopback: each one's 127.0.0.1 becomes its own
    address, so a port bound "inside the pod" stays private to it, as in a real pod."""
    from pairwarden_testbed.localnode.podspec import environment, on_pod_loopback

    assert on_pod_loopback("http://127.0.0.1:8081", "127.9.0.4") == "http://127.9.0.4:8081"
    assert on_pod_loopback("127.0.0.10", "127.9.0.4") == "127.0.0.10"
    assert on_pod_loopback("--control-address=127.0.0.1", "127.9.0.4") == (
        "--control-address=127.9.0.4"
    )
    container = {"name": "c", "env": [{"name": "URL", "value": "http://127.0.0.1:1"}]}
    env = environment(container, {"metadata": {}}, "127.9.0.4", [], {}, {})
    assert env["URL"] == "http://127.9.0.4:1"
