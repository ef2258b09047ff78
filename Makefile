# pairwarden: every target makes its own venv from Python 3.12 and installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
# python3.12 on PATH if it really runs (a pyenv shim may not), else pyenv's 3.12 interpreter.
PYTHON312 ?= $(shell (python3.12 -c 'import sys' >/dev/null 2>&1 && command -v python3.12) || \
	ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -n 1)
STAMP := $(VENV)/.installed
# The one version: pyproject's. Image tags and the chart's appVersion follow it (checked by
# tests/plugin/test_packaging.py); `pairwarden --version` prints it.
APP_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)

.PHONY: help venv demo test unit lint tools bench e2e images crds clean control-plane node-images chaos lock release

help:
	@echo "make demo   - sandbox + operator + two voicemail members, scripted failover story"
	@echo "make test   - lint, then the whole test suite on the embedded sandbox"
	@echo "make lint   - ruff, mypy --strict, import contracts, hadolint"
	@echo "make tools  - system tools the tests use (promtool, sipp and baresip, from Debian packages)"
	@echo "make control-plane - build real Kubernetes 1.20 (etcd, kube-apiserver, ...) from Debian's packages"
	@echo "make node-images - the project's images for the real node's tests, where a node can run (make test does it)"
	@echo "make bench  - failover latency, scale and replication benchmarks (short mode)"
	@echo "make chaos  - CHAOS_RUNS (200) seeded fault schedules on real processes; CHAOS_SEED=S replays one; CHAOS_KEEP=DIR keeps the logs"
	@echo "make e2e    - end-to-end scenarios on a kind cluster (skips without kind/docker)"
	@echo "make images - build the container images (Docker, else buildah from a local base)"
	@echo "make release - wheel, sdist, images (OCI + SBOM + digest), chart pinned by digest, krew archive + manifest, SHA256SUMS in dist/release"
	@echo "make crds   - regenerate crds/ (and the chart's copies, with its variant without CEL) from the pydantic models"
	@echo "make lock   - regenerate the hashed dependency locks (requirements/) with uv"

# Installs exactly the locked, hashed tree (requirements/), then the two local packages on top
# (--no-deps, built with the locked setuptools: no build isolation fetching another).
$(STAMP): pyproject.toml testbed/pyproject.toml requirements/dev.txt requirements/build.txt
	@if [ -z "$(PYTHON312)" ]; then echo "error: Python 3.12 not found (python3.12 on PATH or pyenv 3.12)"; exit 1; fi
	@test -x $(BIN)/python || $(PYTHON312) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>/dev/null || true
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt -r requirements/build.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e '.[test]' -e testbed
	@touch $(STAMP)

# Regenerate the hashed locks from the pyproject pins (uv, installed into the venv on demand).
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.12 --no-header
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv==0.13.9
	$(UV_COMPILE) pyproject.toml -o requirements/operator.txt
	$(UV_COMPILE) pyproject.toml testbed/pyproject.toml -o requirements/testbed.txt
	$(UV_COMPILE) pyproject.toml testbed/pyproject.toml --extra test -o requirements/dev.txt
	$(UV_COMPILE) requirements/build.in -o requirements/build.txt

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/pairwarden-testbed demo

lint: $(STAMP)
	$(BIN)/ruff check operator testbed tests e2e bench
	$(BIN)/ruff format --check operator testbed tests e2e bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint images/Dockerfile

# promtool checks the chart's alert rules (tests/chart/test_alerts.py); sipp (Debian
# sip-tester) is the real SIP peer of tests/sip/test_sipp.py.
tools:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing promtool (Debian package prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "make tools: promtool is missing; install it (apt-get install prometheus, as root) or the alert tests skip"; \
	  fi; }
	@command -v sipp >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing sipp (Debian package sip-tester)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sip-tester >/dev/null; \
	  else \
	    echo "make tools: sipp is missing; install it (apt-get install sip-tester, as root) or the sipp tests skip"; \
	  fi; }
	@command -v baresip >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing baresip (Debian package baresip-core): a third-party SIP endpoint for the generic adapter's test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends baresip-core >/dev/null; \
	  else \
	    echo "make tools: baresip is missing; install it (apt-get install baresip-core, as root) or the baresip test skips"; \
	  fi; }

# A real Kubernetes 1.20 control plane for tests/realk8s and the real_cluster fixture,
# built once from Debian's packages and cached (hack/control-plane.sh). A failed build
# does not fail make: those tests then skip, naming the reason.
control-plane:
	@bash hack/control-plane.sh build || echo "make control-plane: not built (reason above); the real-Kubernetes tests skip"

# The project's images for tests/realnode (hack/node.sh images: hack/images.sh, cached by
# content), built here where a real node can run, so that the real node's tests run from a
# fresh clone after any change under operator/ or testbed/ rather than skipping for stale
# images. Warm 1-2 s; after a code change 1-3 min; cold (base image + dependency layer) tens
# of minutes. Like control-plane, a build that cannot run does not fail make: tests/realnode
# then skips, naming the reason.
node-images:
	@bash hack/node.sh images || echo "make node-images: not built (reason above); tests/realnode skips"

# --durations: every run prints where its time goes (the budget: 25 min warm on 2 cores).
# Two workers (pytest-xdist): each tier of tests/ whole on one worker, in its order; every test
# on the real control plane on one (one control plane per run); the sandbox's e2e scenarios,
# which mostly wait out windows and held faults, on whichever is free (the root conftest.py's
# worker_group says why each goes where). TEST_WORKERS=0: one process, as before.
TEST_WORKERS ?= 2
test: lint tools control-plane node-images
	$(BIN)/pytest --durations=25 $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope)

unit: $(STAMP) tools
	$(BIN)/pytest tests

# failover and scale on the sandbox, then on the real control plane (hack/control-plane.sh)
# when its binaries are cached here; otherwise a line says it was skipped and why. peers on
# the real node where a node can run here (else the sandbox, saying why). Short:
# scale runs 20 pairs on the real control plane; BENCH_PAIRS=100,500 scales every backend up.
BENCH_BACKENDS ?= all
BENCH_PAIRS ?=
bench: $(STAMP)
	@if ls bench/*.py >/dev/null 2>&1; then for b in bench/[!_]*.py; do echo "== $$b"; \
		case $$b in *failover.py) backends="--backend $(BENCH_BACKENDS)";; \
		*scale.py) backends="--backend $(BENCH_BACKENDS) $(if $(BENCH_PAIRS),--pairs $(BENCH_PAIRS))";; \
		*peers.py) backends="--backend $(if $(filter all,$(BENCH_BACKENDS)),all,$(if $(findstring node,$(BENCH_BACKENDS)),node,sandbox))";; \
		*) backends="";; esac; \
		$(BIN)/python $$b --short $$backends || exit 1; done; \
	else echo "no benchmarks yet (bench/ is empty)"; exit 1; fi

# Randomized fault schedules against the real operator, agents and voicemail processes on the
# sandbox (pairwarden_testbed.chaos); the last line is the summary.
CHAOS_RUNS ?= 200
chaos: $(STAMP)
	$(BIN)/python -m pairwarden_testbed.chaos --runs $(CHAOS_RUNS)

e2e: $(STAMP)
	@if ! command -v kind >/dev/null 2>&1; then echo "make e2e: skipped: 'kind' is not installed (the same scenarios run on the sandbox in 'make test')"; exit 0; fi
	@if ! docker info >/dev/null 2>&1; then echo "make e2e: skipped: no container engine answers 'docker info' (the same scenarios run on the sandbox in 'make test')"; exit 0; fi
	$(BIN)/python e2e/kind.py

# With Docker where one answers, else buildah from a locally made python:3.12-slim-bookworm
# (hack/images.sh; cached by content under ~/.cache/pairwarden/images). Load them into a real
# node with `hack/images.sh load SOCKET` or `hack/node.sh up DIR --images`.
images:
	APP_VERSION=$(APP_VERSION) bash hack/images.sh build

# Every artifact of a release from a clean tree (hack/release.sh says which, and its switches);
# .github/workflows/release.yaml runs it on a tag, then pushes and signs.
release: $(STAMP)
	bash hack/release.sh dist/release

crds: $(STAMP)
	$(BIN)/pairwarden crds
	cp crds/*.yaml charts/pairwarden/files/crds/
	$(BIN)/pairwarden crds --without-cel --output charts/pairwarden/files/crds-without-cel/failoverpairs.pairwarden.io.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis dist
