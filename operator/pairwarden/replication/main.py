"""`pairwarden replicate`: one replication run between two members' file APIs.

The JSON report is printed as the last stdout line and written to `--report-json`: the Job
names its container's terminationMessagePath (`/dev/termination-log`), so the kubelet puts the
report into the pod's status, where the operator reads it (`ReplicationReport.from_message`).
The Job's pod holds no API token: it reports through the kubelet, not the API server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
from pathlib import Path

from pairwarden.protocol import ReplicationReport
from pairwarden.replication.client import replicate

log = logging.getLogger("pairwarden.replicate")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, help="source file API base URL")
    parser.add_argument("--to", dest="target", required=True, help="target file API base URL")
    parser.add_argument("--token-file", type=Path, required=True, help="file holding the token")
    parser.add_argument("--pair", help="pair name; checked against the token's <pair>. prefix")
    parser.add_argument(
        "--directories", nargs="+", metavar="DIR", help="only these replicated directories"
    )
    parser.add_argument("--db", action="store_true", help="also copy the database if changed")
    parser.add_argument(
        "--no-files", dest="files", action="store_false", help="skip the files (database only)"
    )
    parser.add_argument("--report-json", type=Path, help="also write the report here")
    parser.add_argument("--ca-file", type=Path, help="CA bundle for https member URLs")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel file transfers")
    parser.add_argument("--timeout", type=float, default=3600.0, help="whole-run timeout (s)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        token = args.token_file.read_text().strip()
    except OSError as exc:
        return _finish(
            args, ReplicationReport(args.source, args.target, error=f"token file: {exc}")
        )
    if args.pair and not token.startswith(f"{args.pair}."):
        error = f"the token in {args.token_file} is not for pair {args.pair!r}"
        return _finish(args, ReplicationReport(args.source, args.target, error=error))
    context = ssl.create_default_context(cafile=str(args.ca_file)) if args.ca_file else None
    report = asyncio.run(
        replicate(
            args.source,
            args.target,
            token,
            directories=args.directories,
            files=args.files,
            database=args.db,
            ssl_context=context,
            concurrency=args.concurrency,
            request_timeout=args.timeout,
        )
    )
    return _finish(args, report)


def _finish(args: argparse.Namespace, report: ReplicationReport) -> int:
    line = report.to_message()
    if report.error:
        print(f"pairwarden replicate: {report.error}", file=sys.stderr)
    if args.report_json is not None:
        try:
            args.report_json.write_text(line + "\n")
        except OSError as exc:
            print(f"pairwarden replicate: cannot write report: {exc}", file=sys.stderr)
    print(line, flush=True)
    return 0 if report.ok else 1
