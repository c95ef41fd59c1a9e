"""One torch thread: on a few shared cores, more threads spin against each other."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
