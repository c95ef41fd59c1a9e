"""Commands of the `run` group (placeholder until its owner writes it)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register this group's commands on the top-level parser."""
