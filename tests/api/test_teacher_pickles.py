"""Teacher uploads refuse at once a torch file whose pickle imports more than tensors."""

from __future__ import annotations

import pickle
import zipfile
from io import BytesIO
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from store.models import Teacher
from tests.api.broker_probe import Broker
from tests.api.factories import row_count
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def _os_system_pickle() -> bytes:
    """A protocol-2 pickle calling os.system('touch ...'), written opcode by opcode: nothing
    here (or in the API) ever unpickles it."""
    return (
        pickle.PROTO + b"\x02"
        + pickle.GLOBAL + b"os\nsystem\n"
        + pickle.SHORT_BINUNICODE + bytes([len("touch /tmp/x")]) + b"touch /tmp/x"
        + pickle.TUPLE1
        + pickle.REDUCE
        + pickle.STOP
    )


def _zip_checkpoint(data: bytes) -> bytes:
    """torch.save's zip layout around a hand-written pickle."""
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("checkpoint/data.pkl", data)
        archive.writestr("checkpoint/version", "3\n")
    return buffer.getvalue()


def test_pickled_objects_in_a_teacher_file_are_422_naming_file_and_store_nothing(
    client: TestClient,
    team: TeamContext,
    broker: Broker,
    session_factory: sessionmaker[Session],
    blob_root: Path,
) -> None:
    for name, data in {
        "evil.pt": _os_system_pickle(),
        "evil.pth": _zip_checkpoint(_os_system_pickle()),
    }.items():
        response = client.post(
            f"{API}/teachers",
            headers=team.headers,
            files={"file": (name, data)},
            data={"arch": "retinanet_resnet18_fpn"},
        )
        assert response.status_code == 422, (name, response.text)
        (detail,) = response.json()["detail"]
        assert detail["loc"] == ["body", "file"]
        assert detail["msg"].startswith(f"{name!r}: refused: it holds pickled Python objects")
        assert "os.system" in detail["msg"] and "nothing in it was run" in detail["msg"]
    assert row_count(session_factory, Teacher, team.team_id) == 0
    assert not (blob_root / "teachers").exists()
    assert broker.enqueued("default") == []
