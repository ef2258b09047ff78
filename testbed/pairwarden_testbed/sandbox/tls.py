"""The sandbox's serving certificate. kubectl and Helm (client-go) send no credentials over plain
HTTP (kubernetes/kubectl#744): against an `http://` server they are anonymous, which RBAC then
refuses. So the sandbox also listens with TLS, and its kubeconfigs name that address and the CA.

One CA and certificate for 127.0.0.1 and localhost, made once per user by the `openssl` command
(controlplane.make_pki, as for the real control plane) and kept under the cache directory; None
without `openssl` (the sandbox then serves plain HTTP only, and says so)."""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pairwarden_testbed.controlplane import ControlPlaneError, make_pki


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def pki_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pairwarden" / "sandbox-pki"


def sandbox_pki(directory: Path | None = None) -> Pki | None:
    """The cached CA and serving certificate, made on first use (atomically: a directory
    renamed into place, so parallel sandboxes never read half of one)."""
    target = directory or pki_dir()
    found = Pki(target / "ca.crt", target / "apiserver.crt", target / "apiserver.key")
    if found.key.exists():
        return found
    if shutil.which("openssl") is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".sandbox-pki-", dir=target.parent))
    try:
        make_pki(work, "127.0.0.1")
        for name in ("ca.key", "sa.key", "sa.pub"):  # nobody signs anything here later
            (work / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # another sandbox was first: use its
            work.rename(target)
    except ControlPlaneError:
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return found if found.key.exists() else None
