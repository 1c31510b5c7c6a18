"""``vigie-contracts``: provision topics, check schemas, write schema files and docs."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from . import asyncapi, compat, schemas
from .events import EVENT_MODELS
from .provision import provision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigie-contracts", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("provision", help="create missing topics, report differences, never delete")
    p.add_argument("--bootstrap", default=os.environ.get("VIGIE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    p.add_argument("--replication-factor", type=int, default=1)
    sub.add_parser("check", help="golden + compatibility check of every schema (CI)")
    sub.add_parser("write-schemas", help="write .avsc files of new model versions")
    sub.add_parser("docs", help="regenerate docs/asyncapi.yaml and the topic pages")
    args = parser.parse_args(argv)
    if args.cmd == "provision":
        report = asyncio.run(provision(args.bootstrap, replication_factor=args.replication_factor))
        print("\n".join(report.lines()))
        return 0
    if args.cmd == "check":
        problems = [str(p) for p in compat.check_all()]
        for event_type in EVENT_MODELS:
            if schemas.current(event_type).schema != schemas.generated(event_type):
                problems.append(
                    f"{event_type}: the model differs from its committed v"
                    f"{schemas.current(event_type).version}; bump SCHEMA_VERSION and write-schemas"
                )
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(EVENT_MODELS)} event types checked, {len(problems)} problem(s)")
        return 1 if problems else 0
    if args.cmd == "write-schemas":
        for path in schemas.write_missing():
            print(f"wrote {path}")
        return 0
    for path in asyncapi.write():
        print(f"wrote {path}")
    return 0
