#!/usr/bin/env bash
# The project's container images without a Docker engine (issue 19).
#
#   hack/images.sh build [TARGET...]   build images/Dockerfile's targets (default: operator agent
#                                      voicemail) as docker.io/pairwarden/TARGET:dev (and :APPVERSION
#                                      of charts/pairwarden/Chart.yaml), plus the pause
#                                      image of the node; write OCI archives of each
#   hack/images.sh base                make only the local python:3.12-slim-bookworm base
#   hack/images.sh load SOCKET [NAME|ARCHIVE...]  import the archives (default: pause and the
#                                      three images; a path: that OCI archive, e.g. a release's)
#                                      into the containerd at SOCKET (namespace k8s.io), each also
#                                      as repo@digest so that a digest-pinned reference resolves
#   hack/images.sh archives            print the directory of the OCI archives
#   hack/images.sh fresh [TARGET...]   exit 0 when the archives are those this tree builds
#                                      (nothing is built), else 1 naming a stale one
#
# With a Docker engine (`docker info` answers) `build` uses `docker build` and `docker save`.
# Without one it uses buildah (Debian's package, installed when missing, as root) in a storage
# of its own under the cache below, never the machine's: the overlay driver where the kernel
# allows it, else vfs (PAIRWARDEN_BUILDAH_DRIVER=vfs|overlay chooses); RUN steps in a chroot
# with the host's network (pip reaches the package index as the host does).
#
# The base: `python:3.12-slim-bookworm` cannot be pulled here, so it is made locally and given
# that exact name in buildah's storage, so the UNCHANGED images/Dockerfile builds:
#   - a Debian bookworm minbase (debootstrap, from the mirror the machine's own apt sources name)
#     with the shared libraries CPython's modules link against, ca-certificates, netbase, tzdata;
#   - the machine's own CPython 3.12 (pyenv's build, the one the Makefile's venvs use; Debian
#     bookworm has only 3.11) relocated to /usr/local as the official image has it: interpreter,
#     libpython (ldconfig), stdlib without tests/tkinter/idle, headers; pip from its ensurepip;
#   - the machine's CA bundle, so pip in the builder stage reaches the package index the machine
#     reaches (the same trust the host has; nothing else of the host), named in /etc/pip.conf.
# Everything is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/pairwarden/images, keyed by content:
# the base by this script's base recipe + the interpreter; each image by the build context that
# .dockerignore lets through + the Dockerfile + the base. A warm run builds nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CACHE="${PAIRWARDEN_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pairwarden/images}"
DRIVER="${PAIRWARDEN_BUILDAH_DRIVER:-}"
ARCHIVES="$CACHE/archives"
BASE_NAME=docker.io/library/python:3.12-slim-bookworm
PAUSE_NAME=docker.io/pairwarden/pause:3.2
TAG=dev
# The chart's default tag is its appVersion: the images carry that tag too.
APP_VERSION="${APP_VERSION:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$REPO/charts/pairwarden/Chart.yaml" 2>/dev/null)}"
TARGETS_ALL=(operator agent voicemail)
BASE_PACKAGES=ca-certificates,netbase,tzdata,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,zlib1g,libexpat1,libncursesw6,libreadline8,libuuid1,libnsl2,libtirpc3,libcrypt1

say() { echo "images: $*" >&2; }
die() { echo "images: error: $*" >&2; exit 1; }
now() { date +%s; }

bah() { buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver "$DRIVER" "$@"; }

# overlay where the kernel and the cache's filesystem allow it (fast, layers shared), else vfs
# (a full copy per layer: slow and large, but works anywhere). PAIRWARDEN_BUILDAH_DRIVER chooses.
pick_driver() {
    if [ -z "$DRIVER" ]; then
        DRIVER=vfs
        if grep -qw overlay /proc/filesystems 2>/dev/null; then
            DRIVER=overlay STORE="$CACHE/storage-overlay"
            local ctr
            if ctr=$(bah from --pull-never scratch 2>/dev/null) && bah mount "$ctr" >/dev/null 2>&1; then
                bah rm "$ctr" >/dev/null 2>&1 || true
            else
                [ -n "$ctr" ] && bah rm "$ctr" >/dev/null 2>&1
                say "overlay storage does not work here: using vfs"
                DRIVER=vfs
            fi
        fi
    fi
    STORE="$CACHE/storage-$DRIVER"
    mkdir -p "$STORE"
}

ensure_tools() {
    local missing=() t
    for t in "$@"; do
        case $t in
            buildah) command -v buildah >/dev/null 2>&1 || missing+=(buildah) ;;
            debootstrap) command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap) ;;
            runc) command -v runc >/dev/null 2>&1 || missing+=(runc) ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]}: install Debian's packages (apt-get install ${missing[*]}, as root)"
    say "installing ${missing[*]} (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >"$CACHE/apt-install.log" 2>&1 || {
        tail -n 20 "$CACHE/apt-install.log" >&2
        die "apt-get install ${missing[*]} failed (log: $CACHE/apt-install.log); run 'apt-get update' first?"
    }
}

docker_answers() {
    [ "${PAIRWARDEN_IMAGES_ENGINE:-}" = buildah ] && return 1
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# The machine's CPython 3.12: python3.12 on PATH if it runs, else pyenv's newest 3.12 (as the
# Makefile picks it). Prints its sys.prefix.
python312_prefix() {
    local py=""
    if python3.12 -c 'import sys' >/dev/null 2>&1; then
        py=$(command -v python3.12)
    else
        py=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12*/bin/python3.12 2>/dev/null |
             sort -V | tail -n 1)
    fi
    [ -n "$py" ] || die "no CPython 3.12 on this machine (python3.12 on PATH or pyenv 3.12): the base image copies it"
    "$py" -c 'import sys; print(sys.prefix)'
}

# The first http(s) mirror of the machine's own Debian sources for the main archive.
debian_mirror() {
    local f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk 'BEGIN { RS=""; FS="\n" }
            { u=""; s=""; en=1
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/) { u=$i; sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); u=a[1] }
                if ($i ~ /^Suites:/) s=$i
                if ($i ~ /^Enabled:[ \t]*no/) en=0 }
              if (en && u ~ /^https?:\/\// && u !~ /security/ && s !~ /security/) { print u; exit } }' "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' "$f")
        [ -n "$uri" ] && { echo "${uri%/}"; return 0; }
    done
    return 1
}

# The recipe of the base, for its cache key: this function's own text and the interpreter.
base_key() {
    local prefix=$1
    {
        declare -f make_base_rootfs
        echo "$BASE_PACKAGES"
        "$prefix/bin/python3.12" -c 'import sys; print(sys.version)'
        sha256sum "$prefix/bin/python3.12" "$prefix"/lib/libpython3.12.so.1.0 | cut -d' ' -f1
    } | sha256sum | cut -c1-16
}

make_base_rootfs() {
    local prefix=$1 rootfs=$2 mirror=$3
    rm -rf "$rootfs"
    say "debootstrap bookworm minbase into $rootfs (from $mirror)"
    nice -n 10 debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$mirror" \
        >"$CACHE/debootstrap.log" 2>&1 || {
        tail -n 20 "$CACHE/debootstrap.log" >&2
        die "debootstrap failed (log: $CACHE/debootstrap.log)"
    }
    say "adding CPython $("$prefix/bin/python3.12" -c 'import platform; print(platform.python_version())') from $prefix as /usr/local"
    local lib="$rootfs/usr/local/lib" stdlib="$prefix/lib/python3.12"
    mkdir -p "$rootfs/usr/local/bin" "$lib" "$rootfs/usr/local/include"
    cp -a "$prefix/bin/python3.12" "$rootfs/usr/local/bin/"
    ln -sf python3.12 "$rootfs/usr/local/bin/python3"
    ln -sf python3.12 "$rootfs/usr/local/bin/python"
    cp -a "$prefix"/lib/libpython3*.so* "$lib/"
    cp -a "$prefix/include/python3.12" "$rootfs/usr/local/include/"
    # The stdlib as the slim image has it: no tests, no Tk/IDLE, no static libpython, and an
    # empty site-packages (pip comes from ensurepip below, nothing the machine installed).
    tar -C "$prefix/lib" -cf - \
        --exclude='python3.12/site-packages/*' --exclude='python3.12/test' \
        --exclude='python3.12/idlelib' --exclude='python3.12/tkinter' --exclude='python3.12/turtledemo' \
        --exclude='python3.12/lib-dynload/_tkinter*' --exclude='*/tests' --exclude='*/idle_test' \
        --exclude='libpython*.a' --exclude='__pycache__' python3.12 | tar -C "$lib" -xf -
    mkdir -p "$lib/python3.12/site-packages"
    # The build's prefix is baked into sysconfig; point it at /usr/local.
    grep -rlF "$prefix" "$lib/python3.12" --include='_sysconfigdata*.py' --include=Makefile \
        --include='*.pc' 2>/dev/null | xargs -r sed -i "s|$prefix|/usr/local|g"
    [ -d "$prefix/lib/pkgconfig" ] && cp -a "$prefix/lib/pkgconfig" "$lib/" &&
        sed -i "s|$prefix|/usr/local|g" "$lib"/pkgconfig/*.pc
    chroot "$rootfs" /sbin/ldconfig
    chroot "$rootfs" /usr/local/bin/python3.12 -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, decimal, venv' ||
        die "the relocated CPython does not import its modules in $rootfs"
    chroot "$rootfs" /usr/local/bin/python3.12 -m ensurepip --default-pip >/dev/null ||
        die "ensurepip failed in $rootfs"
    chroot "$rootfs" /usr/local/bin/python3.12 -m compileall -q -j 0 /usr/local/lib/python3.12 >/dev/null || true
    # The machine's CA bundle (a superset of Debian's): the builder's pip reaches what the host reaches.
    [ -r /etc/ssl/certs/ca-certificates.crt ] &&
        cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    # pip trusts its own certifi bundle unless told otherwise; tell it to trust the system's.
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    # Slim: no apt caches, docs, man pages or locales.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
}

image_present() { bah inspect --type image "$1" >/dev/null 2>&1; }

cmd_base() {
    ensure_tools buildah runc
    local prefix key stamp="$STORE/base.key"
    prefix=$(python312_prefix)
    key=$(base_key "$prefix")
    if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && image_present "$BASE_NAME"; then
        say "base $BASE_NAME is cached (key $key)"
        return 0
    fi
    local archive="$CACHE/base-$key.tar"
    if [ -s "$archive" ]; then
        bah pull --quiet "oci-archive:$archive" >/dev/null && bah tag "$(bah images -q --filter label=io.pairwarden.base-key="$key" | head -n 1)" "$BASE_NAME" 2>/dev/null || true
        if image_present "$BASE_NAME"; then
            echo "$key" >"$stamp"
            say "base $BASE_NAME loaded from $archive"
            return 0
        fi
    fi
    [ "$(id -u)" = 0 ] || die "making the base image needs root (debootstrap, chroot)"
    ensure_tools debootstrap
    local mirror t0
    mirror=$(debian_mirror) || die "no Debian mirror in /etc/apt/sources.list(.d): debootstrap cannot fetch bookworm"
    t0=$(now)
    local rootfs="$CACHE/base-rootfs"
    make_base_rootfs "$prefix" "$rootfs" "$mirror"
    say "committing $BASE_NAME"
    local ctr
    ctr=$(bah from --pull-never scratch)
    bah copy --quiet "$ctr" "$rootfs/" / >/dev/null
    bah config --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --env PYTHON_VERSION="$("$prefix/bin/python3.12" -c 'import platform; print(platform.python_version())')" \
        --cmd python3 --label org.opencontainers.image.description="local base: Debian bookworm minbase + CPython 3.12 (pairwarden hack/images.sh)" \
        --label io.pairwarden.base-key="$key" "$ctr"
    bah commit --quiet --rm "$ctr" "$BASE_NAME" >/dev/null
    rm -rf "$rootfs"
    rm -f "$CACHE"/base-*.tar
    bah push --quiet "$BASE_NAME" "oci-archive:$archive:$BASE_NAME" >/dev/null
    echo "$key" >"$stamp"
    say "base $BASE_NAME made in $(($(now) - t0))s (key $key)"
}

# The pause image of the node's pod sandboxes: a static binary that waits for a signal.
cmd_pause() {
    local key stamp="$STORE/pause.key" src="$CACHE/pause" archive="$ARCHIVES/pause.tar"
    mkdir -p "$src" "$ARCHIVES"
    cat >"$src/pause.c" <<'EOF'
/* pod sandbox: hold the namespaces, reap children, leave on SIGINT/SIGTERM */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void leave(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction a = {0}, r = {0};
    a.sa_handler = leave; sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL);
    r.sa_handler = reap; r.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &r, NULL);
    for (;;) pause();
}
EOF
    key=$(sha256sum "$src/pause.c" | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && image_present "$PAUSE_NAME" && [ -s "$archive" ]; then
        return 0
    fi
    command -v gcc >/dev/null 2>&1 || die "gcc is missing: the pause image is compiled here (apt-get install gcc libc6-dev)"
    gcc -Os -static -o "$src/pause" "$src/pause.c" || die "could not compile the pause binary (static glibc: libc6-dev)"
    strip "$src/pause" 2>/dev/null || true
    local ctr
    ctr=$(bah from --pull-never scratch)
    bah copy --quiet "$ctr" "$src/pause" /pause >/dev/null
    bah config --entrypoint '["/pause"]' --cmd '' --user 65535:65535 "$ctr"
    bah commit --quiet --rm "$ctr" "$PAUSE_NAME" >/dev/null
    rm -f "$archive"
    bah push --quiet "$PAUSE_NAME" "oci-archive:$archive:$PAUSE_NAME" >/dev/null
    echo "$key" >"$stamp"
    say "pause image $PAUSE_NAME made"
}

# What reaches the build context (.dockerignore's `!` lines name it), the Dockerfile and the base.
context_key() {
    local target=$1 base_key=$2 inc
    (
        cd "$REPO"
        echo "$target $base_key"
        sha256sum images/Dockerfile .dockerignore
        for inc in $(sed -n 's|^!\(.*\)|\1|p' .dockerignore | sed 's|/$||'); do
            [ -e "$inc" ] || continue
            find "$inc" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info/*' \
                -print0 | sort -z | xargs -0 -r sha256sum
        done
    ) | sha256sum | cut -c1-16
}

build_buildah() {
    local targets=("$@") t key stamp archive name t0
    cmd_base
    cmd_pause
    local base_key
    base_key=$(cat "$STORE/base.key")
    for t in "${targets[@]}"; do
        name="docker.io/pairwarden/$t:$TAG"
        archive="$ARCHIVES/$t.tar"
        stamp="$STORE/$t.key"
        key=$(context_key "$t" "$base_key")
        if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && image_present "$name" && [ -s "$archive" ]; then
            say "$name is cached (key $key)"
            continue
        fi
        t0=$(now)
        say "buildah bud --target $t -t $name"
        # --layers: the builder stage is built once and reused by the other targets.
        (cd "$REPO" && nice -n 10 buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver "$DRIVER" \
            bud --quiet --layers --pull-never --network host --isolation chroot \
            -f images/Dockerfile --target "$t" -t "$name" ${APP_VERSION:+-t "${name%:*}:$APP_VERSION"} . \
            >"$CACHE/build-$t.log" 2>&1) || {
            tail -n 30 "$CACHE/build-$t.log" >&2
            die "building $t failed (log: $CACHE/build-$t.log)"
        }
        rm -f "$archive"
        bah push --quiet "$name" "oci-archive:$archive:$name" >/dev/null
        echo "$key" >"$stamp"
        say "$name built in $(($(now) - t0))s -> $archive"
    done
    # Dangling intermediate images of earlier contents: vfs keeps a full copy of each, so
    # prune there. Not on overlay: those images are --layers' cache (the dependencies' layer
    # above all), and layers share their files there.
    if [ "$DRIVER" = vfs ]; then bah rmi --prune >/dev/null 2>&1 || true; fi
}

build_docker() {
    local t name
    for t in "$@"; do
        name="docker.io/pairwarden/$t:$TAG"
        say "docker build --target $t -t $name"
        (cd "$REPO" && docker build -f images/Dockerfile --target "$t" -t "$name" -t "pairwarden/$t:$TAG" \
            ${APP_VERSION:+-t "pairwarden/$t:$APP_VERSION"} .)
        docker save -o "$ARCHIVES/$t.tar" "$name"
    done
}

cmd_build() {
    mkdir -p "$CACHE" "$ARCHIVES"
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS_ALL[@]}")
    local t0
    t0=$(now)
    # One build at a time per cache (two test sessions may build at once).
    exec 9>"$CACHE/build.lock"
    flock 9
    if docker_answers; then
        build_docker "${targets[@]}"
    else
        pick_driver
        # A build killed midway (a timeout, ^C) leaves its working containers behind.
        bah rm --all >/dev/null 2>&1 || true
        say "no Docker engine answers 'docker info': building with buildah ($DRIVER storage in $STORE)"
        build_buildah "${targets[@]}"
    fi
    echo "$(date -u +%FT%TZ) build ${targets[*]} took $(($(now) - t0))s" >>"$CACHE/build-times.log"
    say "images ready in $(($(now) - t0))s: archives in $ARCHIVES"
}

# Each archive is imported under its own name (the index's ref.name) AND as REPOSITORY@DIGEST
# (ctr's --digests): the CRI resolves a pinned reference `repo:tag@sha256:D` (the chart of a
# release, `make release`) through an image named `repo@sha256:D`, which a registry pull makes
# and a plain `ctr images import` does not; without it the kubelet tries to pull, and fails.
cmd_load() {
    local socket=$1 f n ref names=("${@:2}")
    [ -S "$socket" ] || die "no containerd socket at $socket"
    [ ${#names[@]} -gt 0 ] || names=(pause "${TARGETS_ALL[@]}")
    for n in "${names[@]}"; do
        case $n in
            */*) f=$n ;;  # an archive's path (a release's images/*.oci.tar)
            *) f="$ARCHIVES/$n.tar" ;;
        esac
        [ -s "$f" ] || die "no archive $f: run 'hack/images.sh build' first"
        ref=$(tar -xOf "$f" index.json | sed -n 's/.*"org.opencontainers.image.ref.name":"\([^"]*\)".*/\1/p')
        [ -n "$ref" ] || die "$f: its index.json names no image (org.opencontainers.image.ref.name)"
        ctr --address "$socket" -n k8s.io images import --all-platforms \
            --base-name "${ref%:*}" --digests "$f" >/dev/null || die "ctr images import $f failed"
        if [ "$f" = "$ARCHIVES/$n.tar" ] && [ "$n" != pause ] && [ -n "$APP_VERSION" ]; then
            ctr --address "$socket" -n k8s.io images tag --force "docker.io/pairwarden/$n:$TAG" \
                "docker.io/pairwarden/$n:$APP_VERSION" >/dev/null || die "ctr images tag $n failed"
        fi
        say "loaded $ref ($f)"
    done
}

# Exit 0 when the archives of the targets (default: all) are those the tree as it is now
# builds, else 1 naming the first stale one; builds nothing (a test decides with it whether
# the images' minutes are already spent).
cmd_fresh() {
    local targets=("$@") t store key base
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS_ALL[@]}")
    base=$(base_key "$(python312_prefix)")
    for store in "$CACHE/storage-${DRIVER:-overlay}" "$CACHE/storage-vfs"; do
        [ "$(cat "$store/base.key" 2>/dev/null)" = "$base" ] || continue
        for t in "${targets[@]}"; do
            key=$(context_key "$t" "$base")
            if [ "$(cat "$store/$t.key" 2>/dev/null)" != "$key" ] || [ ! -s "$ARCHIVES/$t.tar" ]; then
                say "$t is not built for this tree (make images)"
                return 1
            fi
        done
        return 0
    done
    say "the base image is not built (make images)"
    return 1
}

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    base) mkdir -p "$CACHE"; pick_driver; cmd_base ;;
    pause) mkdir -p "$CACHE"; pick_driver; ensure_tools buildah; cmd_pause ;;
    load) [ $# -ge 2 ] || usage; shift; cmd_load "$@" ;;
    archives) echo "$ARCHIVES" ;;
    fresh) shift; cmd_fresh "$@" ;;
    *) usage ;;
esac
