"""Replication benchmark: manifest diff (cold and warm hash cache), bytes sent per byte
changed, and loopback throughput of the real replicate path (two file API servers in their
own processes on 127.0.0.1) against `cp -a` of the same changed files, in the same run.

    python bench/replication.py            # 10,000 files, 1 GiB, 1% changed
    python bench/replication.py --short    # 2,000 files, 100 MiB, 1% changed (make bench)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pairwarden.replication.client import replicate
from pairwarden.replication.fileapi import make_token
from pairwarden.replication.manifest import Entry, diff

DIRS = ["Localize/Prompts", "Snapshot", "Stream Files", "UnityMTA"]
PAIR = "bench"
TOKEN = make_token(PAIR, "benchmark-secret")
OLD_NS = 1_600_000_000 * 10**9  # aged mtimes: a fresh file is "racy" and never cached


def build(root: Path, files: int, total: int, rng: random.Random) -> list[str]:
    size = total // files
    names = []
    for i in range(files):
        rel = f"{DIRS[i % len(DIRS)]}/d{i % 50:02d}/f{i:05d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        os.utime(path, ns=(OLD_NS, OLD_NS))
        names.append(rel)
    return names


def start_member(root: Path, token_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pairwarden.replication.serve", "--root", str(root),
         "--pair", PAIR, "--token-file", str(token_file), "--directories", *DIRS],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}/replication"


def manifest(url: str) -> tuple[float, list[Entry], int]:
    """Seconds, entries and files hashed for one GET /manifest."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    began = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url + "/manifest", headers=auth)) as resp:
        body = json.loads(resp.read())
    entries = [Entry.from_wire(e) for e in body["entries"]]
    return time.perf_counter() - began, entries, int(body["hashed"])


def measure(a: Path, b: Path, names: list[str], work: Path, rng: random.Random,
            ua: str, ub: str) -> None:  # fmt: skip
    cold_a, _, hashed_a = manifest(ua)
    cold_b, _, _ = manifest(ub)
    changed = rng.sample(names, max(1, len(names) // 100))
    for rel in changed:
        path = a / rel
        path.write_bytes(rng.randbytes(path.stat().st_size))
        os.utime(path, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    bytes_changed = sum((a / rel).stat().st_size for rel in changed)
    warm_a, src, hashed_warm = manifest(ua)
    warm_b, dst, _ = manifest(ub)
    began = time.perf_counter()
    plan = diff(src, dst)
    diff_s = time.perf_counter() - began
    assert {e.path for e in plan.copy} == set(changed)
    print(
        f"  manifest cold: source {cold_a:.2f} s ({hashed_a} files hashed), target {cold_b:.2f} s"
    )
    print(f"  manifest warm: source {warm_a:.3f} s ({hashed_warm} hashed), target {warm_b:.3f} s;"
          f" pure diff {diff_s * 1000:.1f} ms; cold/warm {cold_a / warm_a:.0f}x")  # fmt: skip

    report = asyncio.run(replicate(ua, ub, TOKEN))
    assert report.ok, report.error
    rep_s = report.duration_seconds
    ratio = report.bytes / bytes_changed
    print(
        f"  replicate: {report.files} files, {report.bytes / 2**20:.1f} MiB sent for"
        f" {bytes_changed / 2**20:.1f} MiB changed: sent/changed = {ratio:.3f} (target 1.0)"
    )

    dest = work / "cp-target"
    dest.mkdir()
    began = time.perf_counter()
    subprocess.run(["cp", "-a", "--parents", *changed, str(dest)], cwd=a, check=True)
    cp_s = time.perf_counter() - began
    mib = bytes_changed / 2**20
    print(f"  throughput: replicate {mib / rep_s:.1f} MiB/s ({rep_s:.2f} s, incl. both warm"
          f" manifests, per-file fsyncs and commit) vs cp -a {mib / cp_s:.1f} MiB/s ({cp_s:.2f} s,"
          f" no fsync); replicate/cp time = {rep_s / cp_s:.1f}x")  # fmt: skip
    again = asyncio.run(replicate(ua, ub, TOKEN))
    print(f"  no-change run: {again.files} files, {again.duration_seconds:.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true", help="2,000 files / 100 MiB")
    parser.add_argument("--files", type=int)
    parser.add_argument("--mib", type=int)
    args = parser.parse_args()
    files = args.files or (2000 if args.short else 10_000)
    total = (args.mib or (100 if args.short else 1024)) << 20
    mode = "SHORT mode, scaled down from 10,000 files / 1 GiB" if args.short else "full size"
    print(f"replication benchmark ({mode}): {files} files, {total >> 20} MiB, 1% changed")
    rng = random.Random(5)
    work = Path(tempfile.mkdtemp(prefix="bench-replication-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        a, b = work / "a", work / "b"
        began = time.perf_counter()
        names = build(a, files, total, rng)
        shutil.copytree(a, b)
        print(f"  tree built and mirrored in {time.perf_counter() - began:.1f} s")
        token_file = work / "token"
        token_file.write_text(TOKEN)
        (pa, ua), (pb, ub) = start_member(a, token_file), start_member(b, token_file)
        procs += [pa, pb]
        measure(a, b, names, work, rng, ua, ub)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
