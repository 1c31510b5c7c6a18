"""``vigie-dlq``: look at a service's dead letters and send them back where they came from.

    vigie-dlq list   --service clickstream [--topic-filter clickstream.raw] [--limit 20]
    vigie-dlq replay --service clickstream [--topic-filter clickstream.raw] [--limit 100]

Both read from ``--from-offset`` (default 0) up to the end of the dead-letter topic as it was
when the command started. ``replay`` prints the offset to pass next time, so a replay can be
resumed without sending the same letters twice. The broker comes from ``--bootstrap`` or
``VIGIE_KAFKA__BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from .dlq import DeadLetter, read_dead_letters, replay
from .producer import Producer
from .settings import KafkaSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vigie-dlq", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("list", "print dead letters with their errors"),
        ("replay", "re-publish dead letters to their original topic"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--service", required=True, help="whose dead letters (dlq.<service>)")
        sub.add_argument("--topic-filter", help="only letters that came from this topic")
        sub.add_argument("--limit", type=int, help="at most this many letters")
        sub.add_argument("--from-offset", type=int, default=0, help="first DLQ offset to read")
        sub.add_argument(
            "--bootstrap",
            default=os.environ.get("VIGIE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        )
    return parser


def _line(letter: DeadLetter) -> str:
    return json.dumps(
        {
            "dlq_offset": letter.offset,
            "origin": letter.origin(),
            "error_type": letter.error_type,
            "error": letter.error,
            "key": letter.key.decode("utf-8", "replace") if letter.key is not None else None,
            "bytes": len(letter.value or b""),
        }
    )


async def _main(args: argparse.Namespace) -> int:
    settings = KafkaSettings(bootstrap_servers=args.bootstrap)
    options = {
        "from_offset": args.from_offset,
        "topic_filter": args.topic_filter,
        "limit": args.limit,
    }
    if args.command == "list":
        count = 0
        async for letter in read_dead_letters(settings, args.service, **options):
            print(_line(letter))
            count += 1
        print(f"{count} dead letter(s)", file=sys.stderr)
        return 0
    async with Producer(settings) as producer:
        done = await replay(settings, args.service, producer, **options)
    for letter in done:
        print(json.dumps({"replayed": letter.origin(), "dlq_offset": letter.offset}))
    resume = max((letter.offset for letter in done), default=args.from_offset - 1) + 1
    print(f"replayed {len(done)} dead letter(s); next --from-offset {resume}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
