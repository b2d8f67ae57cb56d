"""The `spanstream` command: one sub-command per job, each in its own module."""

from __future__ import annotations

import argparse
import sys

from stream import __version__


def build_parser() -> argparse.ArgumentParser:
    from stream.cli import bench, config, export, extract, kafka_io, serve, sink, worker

    parser = argparse.ArgumentParser(prog="spanstream", description=__doc__)
    parser.add_argument("--version", action="version", version=f"spanstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (worker, serve, sink, extract, export, kafka_io, config, bench):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
