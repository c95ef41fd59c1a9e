"""The `distillery` command: local engine runs, data tools, the platform and its client."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cli import admin, client, data, run, serve
from cli.predict import register as register_predict


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="distillery",
        description="Hierarchical knowledge distillation for small-object detection.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (data, run, serve, admin, client):
        module.register(sub)
    register_predict(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    status = args.handler(args)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
