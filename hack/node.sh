#!/usr/bin/env bash
# A real Kubernetes node beside the control plane of hack/control-plane.sh (issue 19).
#
#   hack/node.sh up DIR [--images]   containerd + kubelet + kube-proxy joined to the control plane
#                                    that runs in DIR (its files in DIR/node); returns once the
#                                    Node is Ready; --images also builds and loads the project's
#                                    images (hack/images.sh)
#   hack/node.sh down DIR            stop it: pods, containerd, bridge, iptables rules (idempotent)
#   hack/node.sh status DIR          print what runs
#   hack/node.sh images              build the project's images for the tree where a node can
#                                    run here (`make test`'s step before tests/realnode); else,
#                                    or when the build fails, say why (the tests' skip says it too)
#
# Also: `hack/control-plane.sh up DIR --with-node`; `down DIR` stops a node found there.
# Needs root and Debian's containerd, runc, containernetworking-plugins, iptables, conntrack
# (installed with apt-get when missing); kubelet and kube-proxy come from hack/control-plane.sh
# build. The work is in testbed/pairwarden_testbed/node.py (standard library only).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
case "${1:-}" in
    up | down | status) [ $# -ge 2 ] || usage ;;
    images) ;;
    *) usage ;;
esac
if [ "$1" = up ]; then
    [ -x "$(bash "$HERE/control-plane.sh" bindir)/kubelet" ] || bash "$HERE/control-plane.sh" build
fi
py="$REPO/.venv/bin/python"
[ -x "$py" ] || py=python3
PYTHONPATH="$REPO/testbed${PYTHONPATH:+:$PYTHONPATH}" PAIRWARDEN_K8S_BIN="$(bash "$HERE/control-plane.sh" bindir)" \
    exec "$py" -m pairwarden_testbed.node "$@"
