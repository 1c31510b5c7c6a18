"""``python inference_learner_worker.py [role]``: a role (default: learner) in a process of its
own (the kill -9 test, the latency bench)."""

from __future__ import annotations

import sys

from vigie_inference.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["learner"]))
