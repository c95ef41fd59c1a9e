"""The checks every uploaded checkpoint file passes before it is stored (teachers, backbones)."""

from __future__ import annotations

from pathlib import PurePath

from starlette.concurrency import run_in_threadpool

from api.errors import FieldError
from api.filetypes import CHECKPOINT_SUFFIXES, sniff_checkpoint
from api.ingest import require_content, unsupported_file
from api.pickle_globals import refuse_pickled_objects
from api.uploads import ReceivedUpload


async def checked_checkpoint(upload: ReceivedUpload, what: str) -> str:
    """The suffix of an uploaded checkpoint file after the checks teachers and backbones share:
    a checkpoint suffix, content, first bytes of that type, and for a torch file a pickle of
    tensors only (read without unpickling). `what` names the upload in the suffix error."""
    filename = PurePath(upload.filename).name
    suffix = PurePath(filename).suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise FieldError(
            422,
            ["body", "file"],
            f"{filename!r}: {what} must end in {', '.join(CHECKPOINT_SUFFIXES)}",
        )
    require_content(upload, filename)
    kind = sniff_checkpoint(upload.head)
    if kind is None or (suffix == ".safetensors") != (kind == "safetensors"):
        raise unsupported_file(
            f"{filename!r} is not a {suffix} checkpoint (checked its first bytes)"
        )
    if kind != "safetensors":
        await run_in_threadpool(refuse_pickled_objects, upload, filename)
    return suffix
