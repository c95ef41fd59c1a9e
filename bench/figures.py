"""Printing and saving a benchmark's figures together with the machine they came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.machine import format_machine, machine_info


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def print_figures(title: str, figures: dict[str, Any], machine: dict[str, Any]) -> None:
    """Print a titled block of `name: value` lines followed by the machine line."""
    print(f"== {title}")
    width = max((len(name) for name in figures), default=0)
    for name, value in figures.items():
        print(f"  {name.ljust(width)}  {_format_value(value)}")
    print(f"  {format_machine(machine)}")


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write `payload` as indented JSON to `path` (creating folders); nothing if path is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def publish(
    title: str,
    figures: dict[str, Any],
    *,
    device: str,
    json_path: Path | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print the figures with the machine, write them as JSON if asked; return the payload."""
    machine = machine_info(device)
    print_figures(title, figures, machine)
    payload = {"figures": figures, "machine": machine, **(extra or {})}
    write_json(json_path, payload)
    return payload
