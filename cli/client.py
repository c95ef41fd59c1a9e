"""Client commands that talk HTTP to a Distillery server: login, submit, jobs, follow, download."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"
API = "/api/v1"
TERMINAL_STATES = ("succeeded", "failed", "canceled")
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ClientError(Exception):
    """A failure to report to the user (a server error's detail, a connection problem)."""


def credentials_path() -> Path:
    """Where `distillery login` keeps the server and token (XDG config folder)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "distillery" / "credentials.json"


def load_credentials() -> dict[str, str]:
    """The saved server and token ({} when none were saved)."""
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items() if k in ("server", "token")}


def save_credentials(server: str, token: str) -> Path:
    """Save the server and token, readable by the user only."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"server": server, "token": token}, fh)
    return path


@dataclass
class Connection:
    """A server URL, a token and an optional team."""

    server: str
    token: str | None
    team: int | None = None

    def headers(self) -> dict[str, str]:
        """Authorization and team headers."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.team is not None:
            headers["X-Team-Id"] = str(self.team)
        return headers

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the API root."""
        kwargs.setdefault("timeout", TIMEOUT)
        return httpx.Client(
            base_url=self.server.rstrip("/") + API, headers=self.headers(), **kwargs
        )


def connection_from(args: argparse.Namespace) -> Connection:
    """Flags first, then DISTILLERY_SERVER / DISTILLERY_TOKEN, then the saved credentials."""
    saved = load_credentials()
    server = (
        args.server or os.environ.get("DISTILLERY_SERVER") or saved.get("server") or DEFAULT_SERVER
    )
    token = args.token or os.environ.get("DISTILLERY_TOKEN") or saved.get("token")
    return Connection(server=server, token=token, team=getattr(args, "team", None))


def error_detail(response: httpx.Response) -> str:
    """The server's error as JSON (its `detail`), or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return json.dumps(detail, indent=2) if not isinstance(detail, str) else detail


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or ClientError with the server's detail for a 4xx/5xx."""
    if response.status_code >= 400:
        raise ClientError(f"HTTP {response.status_code}: {error_detail(response)}")
    return response


def _items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        return list(body.get("data", []))
    return list(body or [])


# --- commands ---------------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    """Sign in with e-mail and password (or check a token) and save the credentials."""
    conn = connection_from(args)
    token = args.token
    if token is None:
        email = args.email or input("e-mail: ")
        import getpass

        password = args.password or getpass.getpass("password: ")
        with Connection(conn.server, None).client() as http:
            body = checked(http.post("/auth/login", json={"email": email, "password": password}))
        token = str(body.json()["token"])
    conn = Connection(conn.server, token)
    with conn.client() as http:
        me = checked(http.get("/me")).json()
    path = save_credentials(conn.server, token)
    teams = ", ".join(f"{t['name']} ({t['role']})" for t in me.get("teams", []))
    print(f"logged in to {conn.server} as {me.get('email')}; teams: {teams or 'none'}")
    print(f"credentials saved in {path}")
    return 0


def load_spec_file(path: Path) -> dict[str, Any]:
    """A job spec from a YAML or JSON file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ClientError(f"{path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ClientError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ClientError(f"{path}: a job spec is a mapping (kind, data, ...)")
    return data


def apply_ids(spec: dict[str, Any], *, dataset: int | None, teacher: int | None) -> dict[str, Any]:
    """The spec pointed at platform ids (a local data path makes no sense on a server)."""
    spec = json.loads(json.dumps(spec))
    if dataset is not None:
        data = spec.setdefault("data", {})
        data["dataset_id"] = dataset
        data.pop("path", None)
    if teacher is not None:
        section = spec.setdefault("teacher", {}) or {}
        section["teacher_id"] = teacher
        section.pop("checkpoint", None)
        spec["teacher"] = section
    return spec


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a job spec; prints the new job's id."""
    spec = apply_ids(load_spec_file(args.spec), dataset=args.dataset, teacher=args.teacher)
    body: dict[str, Any] = {"spec": spec}
    if args.name:
        body["name"] = args.name
    with connection_from(args).client() as http:
        job = checked(http.post("/jobs", json=body)).json()
    print(f"job {job['id']} {job.get('state', 'queued')}: {job.get('name') or job.get('kind')}")
    if args.follow:
        return follow_job(connection_from(args), int(job["id"]))
    return 0


def _progress_cell(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    if not progress:
        return "-"
    epoch = f"ep {progress.get('epoch', 0)}/{progress.get('epochs', 0)}"
    total = progress.get("total_steps") or 0
    step = progress.get("step") or 0
    pct = f" {100 * step / total:.0f}%" if total else ""
    return epoch + pct


def _metric(job: dict[str, Any], name: str) -> str:
    student = (job.get("metrics") or {}).get("student") or {}
    value = student.get(name)
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_jobs(args: argparse.Namespace) -> int:
    """List jobs as a table."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.state:
        params["state"] = args.state
    if args.kind:
        params["kind"] = args.kind
    with connection_from(args).client() as http:
        body = checked(http.get("/jobs", params=params)).json()
    jobs = _items(body)
    rows = [
        [
            str(j.get("id")),
            str(j.get("name") or "")[:40],
            str(j.get("kind")),
            str(j.get("state")),
            _progress_cell(j),
            _metric(j, "AP"),
            _metric(j, "AP_small"),
            str(j.get("created_at") or "")[:19].replace("T", " "),
        ]
        for j in jobs
    ]
    header = ["ID", "NAME", "KIND", "STATE", "PROGRESS", "AP", "AP_S", "CREATED"]
    print(format_table(rows, header))
    count = body.get("count") if isinstance(body, dict) else None
    if isinstance(count, int) and count > len(jobs):
        print(f"({len(jobs)} of {count}; --limit for more)")
    return 0


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events stream."""
    event = "message"
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield event, "\n".join(data)
            event = "message"
            data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data


def _state_of(payload: Any) -> str | None:
    if isinstance(payload, dict):
        value = payload.get("state")
        return str(value) if value else None
    return str(payload) if isinstance(payload, str) else None


def _progress_of(payload: Any) -> dict[str, Any]:
    if isinstance(payload, dict):
        inner = payload.get("progress")
        return inner if isinstance(inner, dict) else payload
    return {}


class ProgressView:
    """A tqdm bar over a job's steps with its stage, epoch and loss."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=0, unit="step", dynamic_ncols=True, leave=True)

    def update(self, progress: dict[str, Any]) -> None:
        """Show a progress record."""
        total = int(progress.get("total_steps") or 0)
        step = int(progress.get("step") or 0)
        if total and self.bar.total != total:
            self.bar.reset(total=total)
            self.bar.n = 0
        target = min(step, total) if total else step
        if target >= self.bar.n:
            self.bar.update(target - self.bar.n)
        else:  # a new stage starts its steps again
            self.bar.reset(total=total or None)
            self.bar.update(target)
        stage = progress.get("stage") or ""
        epoch = f"{progress.get('epoch', 0)}/{progress.get('epochs', 0)}"
        self.bar.set_description(f"{stage} ep {epoch}")
        losses = progress.get("losses") or {}
        total_loss = losses.get("loss/total")
        if total_loss is None and losses:
            total_loss = sum(float(v) for v in losses.values())
        postfix = {}
        if total_loss is not None:
            postfix["loss"] = f"{float(total_loss):.3f}"
        if progress.get("lr"):
            postfix["lr"] = f"{float(progress['lr']):.2e}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def write(self, message: str) -> None:
        """Print a line above the bar."""
        self.bar.write(message)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


def follow_job(conn: Connection, job_id: int, *, poll: float = 2.0) -> int:
    """Show a job's progress until it ends; exit status 0 only if it succeeded."""
    view = ProgressView()
    state: str | None = None
    try:
        with conn.client(timeout=httpx.Timeout(None, connect=10.0)) as http:
            while state not in (*TERMINAL_STATES, "deleted"):
                job = checked(http.get(f"/jobs/{job_id}")).json()
                state = job.get("state")
                if job.get("progress"):
                    view.update(job["progress"])
                if state in TERMINAL_STATES:
                    break
                try:
                    state = _stream(http, job_id, view) or state
                except (httpx.TransportError, httpx.StreamError):
                    time.sleep(poll)  # the server went away for a moment; ask again
    finally:
        view.close()
    with conn.client() as http:
        job = checked(http.get(f"/jobs/{job_id}")).json()
    return _summary(job)


def _stream(http: httpx.Client, job_id: int, view: ProgressView) -> str | None:
    headers = {"Accept": "text/event-stream"}
    with http.stream("GET", f"/jobs/{job_id}/events", headers=headers) as response:
        if response.status_code >= 400:
            response.read()
            checked(response)
        for event, data in sse_events(response.iter_lines()):
            payload = _json(data)
            if event == "progress":
                view.update(_progress_of(payload))
            elif event == "log":
                message = payload.get("message") if isinstance(payload, dict) else payload
                view.write(str(message))
            elif event == "state":
                state = _state_of(payload)
                if state in (*TERMINAL_STATES, "deleted"):
                    return state
    return None


def _summary(job: dict[str, Any]) -> int:
    state = job.get("state")
    line = f"job {job.get('id')} {state}"
    student = (job.get("metrics") or {}).get("student") or {}
    if student:
        line += f": AP {_metric(job, 'AP')}, AP_small {_metric(job, 'AP_small')}"
    if job.get("error"):
        line += f": {job['error']}"
    print(line)
    return 0 if state == "succeeded" else 1


def cmd_follow(args: argparse.Namespace) -> int:
    """Follow a job's live progress."""
    return follow_job(connection_from(args), args.job)


def download_artifact(http: httpx.Client, job_id: int, name: str, out: Path) -> Path:
    """Stream one artifact to `out/<name>` (following a presigned redirect)."""
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with http.stream("GET", f"/jobs/{job_id}/artifacts/{name}", follow_redirects=True) as response:
        if response.status_code >= 400:
            response.read()
            checked(response)
        with partial.open("wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)
    partial.replace(target)
    return target


def cmd_download(args: argparse.Namespace) -> int:
    """Download a job's artifacts (default: the student's safetensors)."""
    out: Path = args.out
    with connection_from(args).client() as http:
        artifacts = _items(checked(http.get(f"/jobs/{args.job}/artifacts")).json())
        names = [str(a["name"]) for a in artifacts]
        if args.all:
            chosen = names
        elif args.artifact:
            if args.artifact not in names:
                raise ClientError(
                    f"job {args.job} has no artifact {args.artifact!r}; it has: "
                    + (", ".join(names) or "none")
                )
            chosen = [args.artifact]
        else:
            preferred = [a["name"] for a in artifacts if a.get("kind") == "student_safetensors"]
            preferred = preferred or [
                a["name"] for a in artifacts if a.get("kind") == "teacher_safetensors"
            ]
            if not preferred:
                raise ClientError(
                    f"job {args.job} has no model weights yet; artifacts: "
                    + (", ".join(names) or "none")
                )
            chosen = preferred[:1]
        for name in chosen:
            path = download_artifact(http, args.job, name, out)
            print(path)
    return 0


# --- registration -----------------------------------------------------------------------------


def _guarded(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args) or 0)
        except ClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except httpx.TransportError as exc:
            server = connection_from(args).server
            print(f"error: cannot reach {server}: {exc}", file=sys.stderr)
            return 1

    return run


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the client commands on the top-level parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", help=f"server URL (env DISTILLERY_SERVER; {DEFAULT_SERVER})")
    common.add_argument("--token", help="API token (env DISTILLERY_TOKEN, or `distillery login`)")
    common.add_argument("--team", type=int, help="team id (default: your first team)")

    login = sub.add_parser("login", parents=[common], help="sign in to a server, save the token")
    login.add_argument("--email")
    login.add_argument("--password", help="(prompted when omitted)")
    login.set_defaults(handler=_guarded(cmd_login))

    submit = sub.add_parser("submit", parents=[common], help="submit a job spec (YAML) to a server")
    submit.add_argument("spec", type=Path, help="job spec file (YAML or JSON)")
    submit.add_argument("--dataset", type=int, help="platform dataset id (sets data.dataset_id)")
    submit.add_argument("--teacher", type=int, help="platform teacher id (sets teacher.teacher_id)")
    submit.add_argument("--name", help="job name")
    submit.add_argument("--follow", action="store_true", help="then follow its progress")
    submit.set_defaults(handler=_guarded(cmd_submit))

    jobs = sub.add_parser("jobs", parents=[common], help="list a server's jobs")
    jobs.add_argument("--state", choices=("queued", "running", *TERMINAL_STATES))
    jobs.add_argument("--kind", choices=("teacher", "distill", "evaluate"))
    jobs.add_argument("--limit", type=int, default=50)
    jobs.set_defaults(handler=_guarded(cmd_jobs))

    follow = sub.add_parser("follow", parents=[common], help="follow a job's live progress")
    follow.add_argument("job", type=int)
    follow.set_defaults(handler=_guarded(cmd_follow))

    download = sub.add_parser("download", parents=[common], help="download a job's artifacts")
    download.add_argument("job", type=int)
    download.add_argument("--artifact", help="artifact name (default: the student safetensors)")
    download.add_argument("--all", action="store_true", help="every artifact")
    download.add_argument("--out", type=Path, default=Path("."), help="folder (default: .)")
    download.set_defaults(handler=_guarded(cmd_download))
