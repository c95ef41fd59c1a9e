"""The job states and kinds the client knows (store.models', without importing the store)."""

from __future__ import annotations

JOB_STATES = ("queued", "running", "succeeded", "failed", "canceled")
TERMINAL_STATES = ("succeeded", "failed", "canceled")
ENDED = (*TERMINAL_STATES, "deleted")
"""Where following a job stops: a terminal state, or the job deleted meanwhile."""
JOB_KINDS = ("teacher", "distill", "evaluate")
