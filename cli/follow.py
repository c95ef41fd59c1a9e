"""The `follow` command: a job's live progress, what it is doing, and its AP at the end."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from cli.connection import (
    Connection,
    checked,
    common_options,
    connection_from,
    guarded,
    page_items,
)
from cli.events import event_data, progress_of, sse_events, state_of
from cli.figures import ap_figures, evaluated_on, model_metrics
from cli.logs import fetch_events
from cli.progress import JobActivity, StepRate
from cli.states import ENDED

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
TEACHERS_SCANNED = 100
"""Newest teachers searched for the one a teacher job registered (it is among the newest)."""


class ProgressView:
    """A bar over the steps of the current stage, with a line each time the activity changes.

    The bar shows the job's own figures (loss, lr, ETA) and a speed measured from the steps
    seen while following (tqdm's own rate would count the steps done before attaching).
    Without a terminal there is no bar, only the lines.
    """

    def __init__(self, activity: JobActivity, *, clock: Callable[[], float] = time.monotonic):
        self.activity = activity
        self.rate = StepRate(clock)
        self.bar: Any = None
        self._said: str | None = None

    def write(self, message: str) -> None:
        """Print a line (above the bar when there is one)."""
        from tqdm import tqdm

        tqdm.write(message)

    def say_activity(self) -> None:
        """Print what the job is doing if it changed since the last line."""
        phase = self.activity.phase()
        if phase in ENDED:
            return  # the summary says how it ended
        text = self.activity.describe()
        # While training, one line per stage (the bar shows the steps).
        key = text if phase != "training" else f"{self.activity.stage} training"
        if key != self._said:
            self._said = key
            self.write(f"job {self.activity.job_id}: {text}")

    def show(self) -> None:
        """Draw the bar of the current progress record and say a new activity."""
        self.say_activity()
        progress = self.activity.progress
        total = int(progress.get("total_steps") or 0)
        if not total:
            return
        step = min(int(progress.get("step") or 0), total)
        self.rate.observe(self.activity.stage, step)
        desc = f"{self.activity.stage} {self.activity.phase()}".strip()
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=step,
                desc=desc,
                unit="step",
                bar_format=BAR_FORMAT,
                dynamic_ncols=True,
                leave=True,
                disable=None,
            )
        elif self.bar.total != total or step < self.bar.n:
            self.bar.reset(total=total)
        self.bar.n = step  # set, not update(): tqdm's own rate stays out of it
        self.bar.set_description_str(desc, refresh=False)
        self.bar.set_postfix(self.activity.postfix(self.rate), refresh=False)
        self.bar.refresh()

    def progress(self, record: Mapping[str, Any]) -> None:
        """A new progress record."""
        self.activity.see_progress(record)
        self.show()

    def state(self, state: str | None) -> None:
        """A new job state."""
        self.activity.see_state(state)
        self.say_activity()

    def event(self, event: Any, *, show: bool = True) -> None:
        """A job event (a log line): printed once, and noted (an epoch done ends its eval)."""
        if not isinstance(event, Mapping):
            if show:
                self.write(str(event))
            return
        if self.activity.see_event(event) and show:
            self.write(str(event.get("message", "")))
            self.show()

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


class Follower:
    """Follows one job over its event stream, reconnecting until the job ends."""

    def __init__(self, http: httpx.Client, job: Mapping[str, Any], view: ProgressView) -> None:
        self.http = http
        self.job_id = int(job["id"])
        self.view = view

    def catch_up(self, *, show: bool) -> None:
        """Read the events written since the last one seen (all of them on attach)."""
        since = self.view.activity.last_event_id
        for event in fetch_events(self.http, self.job_id, since_id=since):
            self.view.event(event, show=show)

    def refresh(self) -> None:
        """Read the job's state and progress again."""
        job = checked(self.http.get(f"/jobs/{self.job_id}")).json()
        if job.get("progress"):
            self.view.activity.see_progress(job["progress"])
        self.view.state(job.get("state"))
        self.view.show()

    def stream(self) -> None:
        """Read the event stream until it ends; the events it missed are read on connect."""
        headers = {"Accept": "text/event-stream"}
        with self.http.stream("GET", f"/jobs/{self.job_id}/events", headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                checked(response)
            connected = False
            for event, data in sse_events(response.iter_lines()):
                if not connected:
                    # The stream starts at its end: what was written before it opened is read
                    # from the job's log (each event is shown once).
                    connected = True
                    self.catch_up(show=True)
                payload = event_data(data)
                if event == "progress":
                    self.view.progress(progress_of(payload))
                elif event == "log":
                    self.view.event(payload)
                elif event == "state":
                    self.view.state(state_of(payload))
                    if self.view.activity.state in ENDED:
                        return

    def run(self, *, poll: float) -> None:
        """Follow until the job reaches a terminal state (or is deleted)."""
        while self.view.activity.state not in ENDED:
            # The server going away for a moment ends a stream: ask again.
            with contextlib.suppress(httpx.TransportError, httpx.StreamError):
                self.stream()
            if self.view.activity.state not in ENDED:
                time.sleep(poll)
                self.refresh()
                self.catch_up(show=True)


def registered_teacher(http: httpx.Client, job_id: int) -> int | None:
    """The id of the teacher a teacher job registered (None if not found)."""
    body = checked(http.get("/teachers", params={"limit": TEACHERS_SCANNED})).json()
    for row in page_items(body):
        if row.get("source_job_id") == job_id:
            return int(row["id"])
    return None


def summary_lines(job: Mapping[str, Any], *, teacher_id: int | None = None) -> list[str]:
    """The end of a follow: the state and the AP figures of student and teacher, in percent,
    with the split and image count they come from."""
    line = f"job {job.get('id')} {job.get('state')}"
    metrics = job.get("metrics") or {}
    student, teacher = model_metrics(metrics, "student"), model_metrics(metrics, "teacher")
    figures = []
    if student:
        figures.append(ap_figures(student))
    if teacher:
        figures.append("teacher " + ap_figures(teacher))
    if figures:
        line += ": " + "; ".join(figures)
        evaluated = evaluated_on(metrics)
        if evaluated:
            line += f" ({evaluated})"
    if job.get("error"):
        line += f": {job['error']}"
    lines = [line]
    if teacher_id is not None:
        lines.append(
            f"registered as teacher {teacher_id}: distil from it with "
            f"`distillery submit SPEC --teacher {teacher_id}`"
        )
    return lines


def follow_job(conn: Connection, job_id: int, *, poll: float = 2.0) -> int:
    """Show a job's progress until it ends; exit status 0 only if it succeeded."""
    with conn.client(timeout=httpx.Timeout(None, connect=10.0)) as http:
        job = checked(http.get(f"/jobs/{job_id}")).json()
        view = ProgressView(JobActivity(job))
        follower = Follower(http, job, view)
        try:
            if job.get("state") not in ENDED:
                follower.catch_up(show=False)
                view.show()
                follower.run(poll=poll)
        finally:
            view.close()
        job = checked(http.get(f"/jobs/{job_id}")).json()
        teacher_id = None
        if job.get("kind") == "teacher" and job.get("state") == "succeeded":
            teacher_id = registered_teacher(http, job_id)
    print("\n".join(summary_lines(job, teacher_id=teacher_id)))
    return 0 if job.get("state") == "succeeded" else 1


def cmd_follow(args: argparse.Namespace) -> int:
    """Follow a job's live progress."""
    return follow_job(connection_from(args), args.job)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `follow` on the top-level parser."""
    follow = sub.add_parser(
        "follow",
        parents=[common_options()],
        help="follow a job's live progress (stage, evaluation, export), then its AP",
    )
    follow.add_argument("job", type=int)
    follow.set_defaults(handler=guarded(cmd_follow))
