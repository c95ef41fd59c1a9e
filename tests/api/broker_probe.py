"""Reading what the API enqueued, straight from the broker (Redis lists or kombu's SQL table)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import create_engine, inspect, text


@dataclass
class Broker:
    """The broker a test app sends to, and a way to read what was enqueued on it."""

    url: str
    job_queue: str

    def enqueued(self, queue: str) -> list[tuple[str, list[Any]]]:
        """(task name, args) of every message waiting in `queue`, oldest first."""
        if self.url.startswith("redis://"):
            client = redis.Redis.from_url(self.url)
            # kombu's Redis transport LPUSHes and consumers BRPOP: the oldest is at the end.
            raw = list(reversed(client.lrange(queue, 0, -1)))
            client.close()
        else:
            engine = create_engine(self.url.removeprefix("sqla+"))
            with engine.connect() as conn:
                if not inspect(conn).has_table("kombu_message"):
                    return []  # kombu creates its tables with the first message
                raw = [
                    row[0]
                    for row in conn.execute(
                        text(
                            "SELECT m.payload FROM kombu_message m JOIN kombu_queue q "
                            "ON q.id = m.queue_id WHERE q.name = :name ORDER BY m.id"
                        ),
                        {"name": queue},
                    )
                ]
            engine.dispose()
        out = []
        for payload in raw:
            message = json.loads(payload)
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            out.append((message["headers"]["task"], args))
        return out

    def cleanup(self) -> None:
        """Drop this test's Redis queues (the SQLite broker lives in tmp_path)."""
        if self.url.startswith("redis://"):
            client = redis.Redis.from_url(self.url)
            client.delete(self.job_queue, "default")
            client.close()
