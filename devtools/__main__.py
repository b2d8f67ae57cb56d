"""``python -m devtools kafka up|down|status``, ``demo``, ``image build`` and ``audit`` (used by the Makefile)."""

from __future__ import annotations

import argparse
import sys

from devtools import audit, demo, docker, kafka


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    kafka.add_parser(sub)
    demo.add_parser(sub)
    docker.add_parser(sub)
    audit.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
