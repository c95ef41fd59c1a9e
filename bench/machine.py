"""A description of the machine a figure was measured on, printed next to every figure."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (or the platform's guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str | None = None) -> dict[str, Any]:
    """CPU model, cores, torch version, threads and the device used, as a JSON-able dict."""
    info: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        cuda = torch.cuda.is_available()
        info["device"] = device or ("cuda" if cuda else "cpu")
        if cuda:
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # the API benchmark may run without torch
        info["device"] = device or "cpu"
    return info


def format_machine(info: dict[str, Any]) -> str:
    """One line naming the machine, for printed output and READMEs."""
    parts = [
        f"date: {info['date']}",
        f"cpu: {info['cpu']} ({info['cores']} cores)",
        f"python {info['python']}",
    ]
    if "torch" in info:
        parts.append(f"torch {info['torch']} ({info['threads']} threads)")
    parts.append(f"device: {info['device']}" + (f" ({info['gpu']})" if "gpu" in info else ""))
    return "machine: " + "; ".join(parts)


def set_threads(threads: int | None) -> None:
    """Use `threads` intra-op threads in torch (None keeps torch's default)."""
    if threads is None:
        return
    import torch

    # On a shared, oversubscribed CPU one thread per process is often faster than two that
    # spin-wait for each other; the figures print the count used.
    torch.set_num_threads(threads)
