#!/usr/bin/env bash
# `make release`: every artifact of a release, from a clean tree and the locks, into OUT
# (default dist/release), reproducible up to the push (the workflow .github/workflows/release.yaml
# runs this same script on a tag, then pushes and signs):
#
#   pairwarden-V-py3-none-any.whl, pairwarden-V.tar.gz   the product (PEP 517, locked setuptools)
#   images/operator-V.oci.tar, images/agent-V.oci.tar    OCI archives (hack/images.sh: buildah,
#                                                        or Docker) naming REGISTRY/pairwarden/
#                                                        NAME:V, with images/*.digest (the
#                                                        manifest digest) and images/*.spdx.json
#   pairwarden-V.tgz                                     the chart, image references pinned by
#                                                        digest (image.*.digest), image.registry
#                                                        = RELEASE_REGISTRY
#   kubectl-pairwarden-V.tar.gz, pairwarden.krew.yaml    the plugin for krew, and its manifest
#                                                        generated with the archive's sha256
#   SHA256SUMS                                           of every file above
#
# RELEASE_IMAGES=0 skips the images (minutes; the chart is then packaged without digests).
# RELEASE_ALLOW_DIRTY=1 builds from a tree with uncommitted changes (tests do; a release never).
# RELEASE_REGISTRY: where the workflow pushes the images (default: empty, Docker Hub's
# docker.io/pairwarden/*, the chart's default). The image build takes
# /tmp/pairwarden-realnode.lock, as the real node's tests do (one at a time on a machine);
# PAIRWARDEN_REALNODE_LOCK_HELD=1 says the caller holds it already (tests/realnode builds its
# release inside its own run: taking it again would wait for ever).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$(mkdir -p "${1:-$REPO/dist/release}" && cd "${1:-$REPO/dist/release}" && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
say() { echo "release: $*" >&2; }
die() { echo "release: error: $*" >&2; exit 1; }

cd "$REPO"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
[ -n "$VERSION" ] || die "no version in pyproject.toml"
if [ "${RELEASE_ALLOW_DIRTY:-0}" != 1 ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    die "the tree has uncommitted changes (git status): a release is built from a commit"
fi
# Every timestamp inside the artifacts: the commit's, so two builds of it give the same bytes.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH
rm -rf "$OUT"/* && mkdir -p "$OUT"
say "version $VERSION into $OUT (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"

"$PY" "$HERE/release.py" dists "$OUT"
WHEEL="$OUT/pairwarden-$VERSION-py3-none-any.whl"
[ -s "$WHEEL" ] && [ -s "$OUT/pairwarden-$VERSION.tar.gz" ] || die "wheel or sdist missing"

DIGESTS="{}"
if [ "${RELEASE_IMAGES:-1}" != 0 ]; then
    mkdir -p "$OUT/images"
    say "images (hack/images.sh build operator agent, under /tmp/pairwarden-realnode.lock)"
    if [ "${PAIRWARDEN_REALNODE_LOCK_HELD:-0}" = 1 ]; then  # the caller holds it (tests/realnode)
        APP_VERSION="$VERSION" bash "$HERE/images.sh" build operator agent
    else
        flock /tmp/pairwarden-realnode.lock env APP_VERSION="$VERSION" bash "$HERE/images.sh" build operator agent
    fi
    ARCHIVES=$(bash "$HERE/images.sh" archives)
    DIGESTS="{"
    for t in operator agent; do
        cp "$ARCHIVES/$t.tar" "$OUT/images/$t-$VERSION.oci.tar"
        "$PY" "$HERE/release.py" oci-name "$OUT/images/$t-$VERSION.oci.tar" \
            "${RELEASE_REGISTRY:-docker.io}/pairwarden/$t:$VERSION"
        digest=$("$PY" "$HERE/release.py" image-digest "$OUT/images/$t-$VERSION.oci.tar")
        echo "$digest" >"$OUT/images/$t-$VERSION.digest"
        "$PY" "$HERE/release.py" sbom "$OUT/images/$t-$VERSION.oci.tar" "pairwarden/$t:$VERSION" \
            "$OUT/images/$t-$VERSION.spdx.json"
        DIGESTS="$DIGESTS${DIGESTS#\{}\"$t\": \"$digest\", "
        say "pairwarden/$t:$VERSION $digest"
    done
    DIGESTS="${DIGESTS%, }}"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CHART=$("$PY" "$HERE/release.py" chart charts/pairwarden "$WORK" "$DIGESTS")
if [ -n "${RELEASE_REGISTRY:-}" ]; then
    sed -i "s|^  registry: \"\"|  registry: \"$RELEASE_REGISTRY\"|" "$CHART/values.yaml"
fi
"$PY" - "$CHART" "$OUT" <<'PYEOF'
import asyncio, sys
import helm_sdkpy
config = helm_sdkpy.Configuration(namespace="default")
asyncio.run(helm_sdkpy.Package(config).run(sys.argv[1], sys.argv[2]))
PYEOF
[ -s "$OUT/pairwarden-$VERSION.tgz" ] || die "the chart was not packaged"
"$PY" "$HERE/release.py" normalize "$OUT/pairwarden-$VERSION.tgz"

"$PY" "$HERE/release.py" krew "$WHEEL" "$OUT" plugins/krew/pairwarden.yaml >/dev/null
"$PY" "$HERE/release.py" sums "$OUT"
(cd "$OUT" && sha256sum --check --quiet SHA256SUMS) || die "SHA256SUMS does not verify"
say "done: $(wc -l <"$OUT/SHA256SUMS") artifacts in $OUT"
