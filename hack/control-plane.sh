#!/usr/bin/env bash
# A real Kubernetes v1.20.2 control plane built from Debian's packages (issue 14, issue 19).
#
#   hack/control-plane.sh build                 build (or reuse) the binaries and etcd
#   hack/control-plane.sh up DIR                start etcd + kube-apiserver + controller-manager
#                                               + scheduler on loopback; writes DIR/kubeconfig
#   hack/control-plane.sh up DIR --with-node    the same and a real node (hack/node.sh up DIR)
#   hack/control-plane.sh down DIR              stop them, and a node started there (idempotent)
#   hack/control-plane.sh kubeconfig DIR NS SA  print a kubeconfig acting as ServiceAccount NS/SA
#   hack/control-plane.sh status DIR            print what runs, where
#   hack/control-plane.sh bindir                print the directory holding the binaries
#
# build: Debian bookworm's `kubernetes` SOURCE package (1.20.5+really1.20.2, the whole
# upstream tree with vendor/) compiled in GOPATH mode with Go 1.15 from bullseye, fetched
# with apt-get through PRIVATE sources lists (the mirror is the one the machine's own
# Debian sources name, read at run time), unpacked with dpkg -x, never installed. The
# machine's apt configuration is not touched. Binaries are cached in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/pairwarden/kubernetes-1.20.2/bin
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy.
# etcd comes from bookworm's etcd-server package (installed with apt-get when missing, as root).
#
# up/down/kubeconfig live in testbed/pairwarden_testbed/controlplane.py (stdlib only).
set -euo pipefail

K8S_VERSION=1.20.2
DEB_SRC_VERSION=1.20.5+really1.20.2
GO_SERIES=1.15
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CACHE="${PAIRWARDEN_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pairwarden/kubernetes-$K8S_VERSION}"
BIN="$CACHE/bin"
WORK="$CACHE/work"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# Bumped when the way binaries are built changes, so cached ones are rebuilt.
RECIPE=2

say() { echo "control-plane: $*" >&2; }
die() {
    echo "control-plane: error: $*" >&2
    # The reason the binaries are missing, for the tests that skip without them.
    if [ "${RECORD_FAILURE:-}" = 1 ]; then mkdir -p "$CACHE" && echo "$*" >"$CACHE/build-failed" || true; fi
    exit 1
}

binaries_present() {
    local b
    for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
    [ "$(cat "$BIN/.recipe" 2>/dev/null)" = "$RECIPE" ]
}

# The first http(s) mirror of the machine's own Debian sources for the main archive
# (not -security), from deb822 .sources files or one-line .list files.
debian_mirror() {
    local f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk '
            BEGIN { RS=""; FS="\n" }
            {
                u=""; s=""; en=1
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { u=$i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u=a[1] }
                    if ($i ~ /^Suites:/) s=$i
                    if ($i ~ /^Enabled:[ \t]*no/) en=0
                }
                if (en && u ~ /^https?:\/\// && u !~ /security/ && s !~ /security/) { print u; exit }
            }' "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk '$1 ~ /^deb(-src)?$/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return 0; }
    done
    return 1
}

# apt-get with a private configuration: sources, lists, cache and status of our own.
private_apt() {
    local name=$1; shift
    local d="$WORK/apt-$name"
    apt-get -q \
        -o Dir::Etc::sourcelist="$d/sources.list" \
        -o Dir::Etc::sourceparts=/nonexistent \
        -o Dir::State::Lists="$d/lists" \
        -o Dir::Cache="$d/cache" \
        -o Dir::State::status="$d/status" \
        -o APT::Sandbox::User=root \
        -o Debug::NoLocking=1 \
        "$@"
}

private_apt_setup() {
    local name=$1 line=$2
    local d="$WORK/apt-$name"
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    : >"$d/status"
    echo "$line" >"$d/sources.list"
    if [ ! -e "$d/lists/.updated" ]; then
        say "apt-get update ($name, private lists in $d)"
        # apt-get update may exit 0 having fetched nothing: judge by the index it leaves.
        if ! private_apt "$name" update >"$d/update.log" 2>&1 ||
            ! ls "$d/lists/" | grep -q -e '_Packages' -e '_Sources'; then
            tail -n 5 "$d/update.log" >&2
            local hint="no network to Debian's mirror $MIRROR?"
            [ "$(id -u)" = 0 ] || hint="$hint (not root: apt-get may need root here)"
            rm -rf "$d/lists"
            die "apt-get update for '$line' fetched no index: $hint (log: $d/update.log)"
        fi
        touch "$d/lists/.updated"
    fi
}

check_platform() {
    command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 ||
        die "this is not a Debian machine (no apt-get/dpkg): the control plane is built from Debian's packages"
    [ "$(dpkg --print-architecture)" = amd64 ] || say "warning: architecture $(dpkg --print-architecture), tested on amd64 only"
}

ensure_etcd() {
    command -v etcd >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ]; then
        die "etcd is missing: install Debian's etcd-server package (apt-get install etcd-server, as root)"
    fi
    say "installing etcd (Debian package etcd-server)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server >"$CACHE/etcd-install.log" 2>&1 || {
        tail -n 20 "$CACHE/etcd-install.log" >&2
        die "apt-get install etcd-server failed (log: $CACHE/etcd-install.log); run 'apt-get update' first?"
    }
    # The package starts a system etcd on the default ports; ours run on ports of their own.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
        systemctl stop etcd >/dev/null 2>&1 || true
        systemctl disable etcd >/dev/null 2>&1 || true
    fi
}

fetch_go() {
    local goroot="$WORK/go/usr/lib/go-$GO_SERIES"
    [ -x "$goroot/bin/go" ] && [ -d "$goroot/src/runtime" ] && return 0
    private_apt_setup bullseye "deb $MIRROR bullseye main"
    local d="$WORK/apt-bullseye/debs"
    mkdir -p "$d"
    say "downloading Go $GO_SERIES from bullseye (golang-$GO_SERIES-go, golang-$GO_SERIES-src)"
    (cd "$d" && private_apt bullseye download "golang-$GO_SERIES-go" "golang-$GO_SERIES-src" >"$d/download.log" 2>&1) || {
        tail -n 20 "$d/download.log" >&2
        die "apt-get download golang-$GO_SERIES-go failed (log: $d/download.log)"
    }
    rm -rf "$WORK/go"
    local deb
    for deb in "$d"/golang-"$GO_SERIES"-*.deb; do dpkg -x "$deb" "$WORK/go"; done
    [ -x "$goroot/bin/go" ] || die "Go $GO_SERIES not found in the unpacked packages ($goroot)"
}

fetch_source() {
    local tree="$WORK/src/kubernetes-$DEB_SRC_VERSION"
    [ -e "$tree/.unpacked" ] && return 0
    private_apt_setup bookworm-src "deb-src $MIRROR bookworm main"
    local d="$WORK/src"
    mkdir -p "$d"
    say "downloading the source package kubernetes=$DEB_SRC_VERSION (bookworm)"
    (cd "$d" && private_apt bookworm-src source --download-only kubernetes >"$d/download.log" 2>&1) || {
        tail -n 20 "$d/download.log" >&2
        die "apt-get source --download-only kubernetes failed (log: $d/download.log)"
    }
    local orig
    orig=$(ls "$d"/kubernetes_"$DEB_SRC_VERSION".orig.tar.* 2>/dev/null | head -n 1)
    [ -n "$orig" ] || die "bookworm's kubernetes source is not version $DEB_SRC_VERSION: $(ls "$d")"
    say "unpacking $(basename "$orig")"
    rm -rf "$tree" && mkdir -p "$tree"
    tar -xf "$orig" -C "$tree" --strip-components=1
    touch "$tree/.unpacked"
}

build_binaries() {
    local tree="$WORK/src/kubernetes-$DEB_SRC_VERSION"
    local goroot="$WORK/go/usr/lib/go-$GO_SERIES"
    export GOROOT="$goroot" GOPATH="$WORK/gopath" GOCACHE="$WORK/gocache"
    export GO111MODULE=off CGO_ENABLED=0 GOFLAGS= PATH="$goroot/bin:$PATH"
    mkdir -p "$GOPATH/src/k8s.io" "$GOCACHE"
    ln -sfn "$tree" "$GOPATH/src/k8s.io/kubernetes"
    local pkgroot="$GOPATH/src/k8s.io/kubernetes"
    cd "$pkgroot"

    # /version: the tarball has no git metadata to stamp it with.
    local base=vendor/k8s.io/component-base/version/base.go
    sed -i -e 's/^\(\s*gitMajor\s\+string\)\(\s*=\s*"[^"]*"\)\?/\1 = "1"/' \
        -e 's/^\(\s*gitMinor\s\+string\)\(\s*=\s*"[^"]*"\)\?/\1 = "20"/' \
        -e "s/^\(\s*gitVersion\s*=\s*\)\"[^\"]*\"/\1\"v$K8S_VERSION\"/" \
        -e 's/^\(\s*gitTreeState\s*=\s*\)"[^"]*"/\1"clean"/' "$base"
    grep -q 'gitMinor *string = "20"' "$base" && grep -q "gitVersion *= \"v$K8S_VERSION\"" "$base" || die "could not set the version in $base"

    local openapi=pkg/generated/openapi/zz_generated.openapi.go
    if [ ! -s "$openapi" ]; then
        say "generating $openapi with the vendored openapi-gen"
        nice -n 10 go build -o "$WORK/tools/openapi-gen" k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen
        # Every package tagged +k8s:openapi-gen=, found as build/root/Makefile.generated_files
        # finds them: Go files outside vendor/ (staging/src named as vendor/), a tag in
        # column 0, less code-generator's and sample-apiserver's; named by import path.
        local dirs
        dirs=$(find -H . \( -path ./_\* -o -path ./.\* -o -path ./vendor \) -prune -o \
                   -type f -name '*.go' -print |
               xargs grep --color=never -l '^// *+k8s:' |
               xargs grep --color=never -l '+k8s:openapi-gen=' |
               sed -e 's|^\./staging/src|vendor|' -e 's|^\./||' |
               grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
               xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
        mkdir -p "$(dirname "$openapi")"
        nice -n 10 "$WORK/tools/openapi-gen" \
            --v 1 --logtostderr \
            --go-header-file vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
            --output-file-base zz_generated.openapi \
            --output-package k8s.io/kubernetes/pkg/generated/openapi \
            --report-filename "$WORK/openapi-violations.report" \
            --input-dirs "$dirs" \
            --output-base "$GOPATH/src" >"$WORK/openapi-gen.log" 2>&1 || {
            tail -n 30 "$WORK/openapi-gen.log" >&2
            die "openapi-gen failed (log: $WORK/openapi-gen.log)"
        }
        [ -s "$openapi" ] || die "openapi-gen wrote no $openapi (log: $WORK/openapi-gen.log)"
    fi

    # As upstream's hack/lib/version.sh: the API server's /version comes from client-go's
    # copy, --version from component-base's; stamped at link time (no recompilation).
    local ldflags="-s -w" pkg
    for pkg in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
        ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=faecb196815e248d3ecfb03c680a4507229c2a56"
        ldflags+=" -X $pkg.buildDate=2021-01-13T13:20:00Z"
    done
    mkdir -p "$BIN.tmp"
    local b
    for b in "${BINARIES[@]}"; do
        say "go build $b"
        nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$BIN.tmp/$b" "k8s.io/kubernetes/cmd/$b"
    done
    mkdir -p "$BIN"
    for b in "${BINARIES[@]}"; do mv -f "$BIN.tmp/$b" "$BIN/$b"; done
    echo "$RECIPE" >"$BIN/.recipe"
    rmdir "$BIN.tmp" 2>/dev/null || true
}

cmd_build() {
    RECORD_FAILURE=1
    mkdir -p "$CACHE"
    if binaries_present; then
        ensure_etcd_or_explain
        rm -f "$CACHE/build-failed"
        say "binaries cached in $BIN (nothing to build)"
        return 0
    fi
    check_platform
    MIRROR=$(debian_mirror) || die "no Debian mirror found in /etc/apt/sources.list(.d): cannot fetch Debian's packages"
    say "Debian mirror: $MIRROR (from the machine's own apt sources)"
    local t0=$SECONDS load0 kind=cold
    load0=$(cut -d' ' -f1 /proc/loadavg)
    [ -d "$WORK/gocache" ] && kind="go-cache-warm"
    fetch_go
    fetch_source
    build_binaries
    ensure_etcd_or_explain
    rm -f "$CACHE/build-failed"
    local took=$((SECONDS - t0))
    # Wall time depends on what else runs; the CPU time of the build (children) does not.
    local cpu
    cpu=$(times | tail -n 1)
    echo "$(date -u +%FT%TZ) $kind build took ${took}s on $(nproc) cores;" \
        "CPU (user sys) $cpu; load average $load0 at start, $(cut -d' ' -f1 /proc/loadavg) at end" \
        >>"$CACHE/build-times.log"
    say "built ${BINARIES[*]} in ${took}s into $BIN"
}

ensure_etcd_or_explain() {
    check_platform
    ensure_etcd
}

python_for() {
    local py
    for py in "$REPO/.venv/bin/python" python3; do
        if command -v "$py" >/dev/null 2>&1; then echo "$py"; return 0; fi
    done
    die "python3 not found"
}

run_py() {
    local py
    py=$(python_for)
    PYTHONPATH="$REPO/testbed${PYTHONPATH:+:$PYTHONPATH}" PAIRWARDEN_K8S_BIN="$BIN" \
        exec "$py" -m pairwarden_testbed.controlplane "$@"
}

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

case "${1:-}" in
    build) cmd_build ;;
    up)
        [ $# -eq 2 ] || { [ $# -eq 3 ] && [ "$3" = --with-node ]; } || usage
        binaries_present && command -v etcd >/dev/null 2>&1 || cmd_build
        # --with-node: a real node too (hack/node.sh, issue 19).
        [ "${3:-}" = --with-node ] && { (run_py up "$2") && exec bash "$HERE/node.sh" up "$2"; }
        run_py up "$2" ;;
    down)
        [ $# -eq 2 ] || usage
        # The node first (its pods use the API server); it names anything it left behind
        # and then fails `down`, after the control plane has stopped too.
        node_rc=0
        if [ -e "$2/node/state.json" ]; then bash "$HERE/node.sh" down "$2" || node_rc=$?; fi
        run_py down "$2"
        exit "$node_rc" ;;
    status) [ $# -eq 2 ] || usage; run_py status "$2" ;;
    kubeconfig) [ $# -eq 4 ] || usage; run_py kubeconfig "$2" "$3" "$4" ;;
    bindir) echo "$BIN" ;;
    *) usage ;;
esac
