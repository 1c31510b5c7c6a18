"""``vigie-inference [all|scorer|learner|labeller]``: run the inference service until SIGTERM.

``all`` (the default) runs the three in one process: one deployment, and the scorer sees every
checkpoint as soon as it is written. Split them to scale the scorer over the transactions'
partitions while one learner keeps the model state (the learner must be a single instance).
"""

from __future__ import annotations

import os
import sys

from vigie_runtime import load_settings, run

from .app import wire
from .settings import InferenceSettings

ROLES = ("all", "scorer", "learner", "labeller")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        if len(args) != 1 or args[0] not in ROLES:
            print(f"usage: vigie-inference [{'|'.join(ROLES)}]", file=sys.stderr)
            return 2
        os.environ["VIGIE_INFERENCE_ROLE"] = args[0]
    settings = load_settings(InferenceSettings)
    return run(settings, wire)


if __name__ == "__main__":
    raise SystemExit(main())
