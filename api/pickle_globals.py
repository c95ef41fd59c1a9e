"""What a torch checkpoint's pickle would import, read without unpickling (nothing is run).

The API cannot load torch; it reads the opcodes of the pickle inside an uploaded `.pt` /
`.pth` file (`pickletools.genops`, which executes nothing) and refuses at once a file whose
pickle names any global outside what `torch.save(state_dict)` writes. The worker still loads
what passes with `torch.load(weights_only=True)` only, the real guard.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from api.errors import FieldError
from api.ingest import unsupported_file
from api.uploads import ReceivedUpload

MAX_PICKLE_BYTES = 64 * 1024 * 1024
"""A state dict's pickle holds names and shapes only (the tensors are separate records)."""

LEGACY_PICKLES = 5
"""torch's legacy format: magic number, protocol, sys info, the object, the storage keys."""
SHOWN_GLOBALS = 3
"""How many refused imports a 422 names."""

_REBUILDERS = {
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_qtensor",
    "_rebuild_meta_tensor_no_storage",
}
_TORCH_NAMES = {
    "Size",
    "device",
    "strided",
    *(
        f"{kind}{bits}"
        for kind, widths in (("float", (16, 32, 64)), ("int", (8, 16, 32, 64)), ("uint", (8,)))
        for bits in widths
    ),
    "bfloat16",
    "bool",
    "complex64",
    "complex128",
}
_STORAGE = re.compile(r"[A-Z][A-Za-z0-9]*Storage")
_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}


class PickleRefused(ValueError):
    """A checkpoint whose pickle imports something a weights-only load refuses."""


def allowed_global(module: str, name: str) -> bool:
    """Whether `module.name` is one of the globals a plain tensor state dict pickles."""
    if module == "collections":
        return name == "OrderedDict"
    if module == "torch._utils":
        return name in _REBUILDERS
    if module == "torch":
        return name in _TORCH_NAMES or bool(_STORAGE.fullmatch(name))
    if module == "torch.serialization":
        return name == "_get_layout"
    if module == "_codecs":
        return name == "encode"  # bytes in protocol-2 pickles
    return False


def _globals_of_one(stream: IO[bytes]) -> list[str]:
    """The globals one pickle in `stream` names, in order; raises ValueError if unreadable."""
    found: list[str] = []
    strings: list[str] = []
    memo: dict[int, str] = {}
    last: str | None = None
    for opcode, arg, _pos in pickletools.genops(stream):
        op = opcode.name
        if op in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            found.append(f"{module}.{name}")
        elif op == "STACK_GLOBAL":
            if len(strings) < 2:
                raise PickleRefused("an import whose name cannot be read")
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif op.startswith("EXT"):
            raise PickleRefused("an import through the copyreg extension registry")
        if op in _STRING_OPS:
            last = arg if isinstance(arg, str) else bytes(arg or b"").decode("latin-1")
            strings.append(last)
        elif op in ("BINPUT", "LONG_BINPUT", "PUT") and last is not None and isinstance(arg, int):
            memo[arg] = last
        elif op == "MEMOIZE" and last is not None:
            memo[len(memo)] = last
        elif op in ("BINGET", "LONG_BINGET", "GET") and isinstance(arg, int):
            value = memo.get(arg)
            if value is not None:
                strings.append(value)
            last = None
        else:
            last = None
    return found


def checkpoint_globals(path: Path) -> Iterator[list[str]]:
    """The globals each pickle of a torch checkpoint at `path` names (zip or legacy format).

    One list per pickle, in file order; raises ValueError when one cannot be read.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            pickles = [i for i in archive.infolist() if i.filename.endswith(".pkl")]
            if not pickles:
                raise ValueError("a zip file without the pickle torch.save writes")
            for info in pickles:
                if info.file_size > MAX_PICKLE_BYTES:
                    raise ValueError(f"its pickle is larger than {MAX_PICKLE_BYTES} bytes")
                yield _globals_of_one(io.BytesIO(archive.read(info)))
        return
    with path.open("rb") as handle:
        for _ in range(LEGACY_PICKLES):
            yield _globals_of_one(handle)


def refused_globals(path: Path) -> list[str]:
    """The globals of the checkpoint at `path` that a weights-only load would refuse.

    Reading stops at the first pickle that names one (a plain pickle is refused for what it
    imports, not for failing to be a torch file). Raises PickleRefused for an import that
    cannot be read, ValueError when the file cannot be read as a torch checkpoint and named
    nothing refused before that.
    """
    refused: list[str] = []
    for names in checkpoint_globals(path):
        for qualified in names:
            module, _, name = qualified.rpartition(".")
            if not allowed_global(module, name) and qualified not in refused:
                refused.append(qualified)
        if refused:
            break
    return refused


def refuse_pickled_objects(upload: ReceivedUpload, filename: str) -> None:
    """422 on `file` when an uploaded torch file's pickle imports more than tensors (read,
    never run); 415 when it cannot be read as a torch checkpoint. For backbone and teacher
    uploads alike, before anything is stored."""
    assert upload.path is not None
    try:
        refused = refused_globals(upload.path)
    except PickleRefused as exc:
        refused = [str(exc)]
    except ValueError as exc:
        raise unsupported_file(f"{filename!r} is not a readable torch checkpoint ({exc})") from None
    if refused:
        shown = ", ".join(refused[:SHOWN_GLOBALS])
        more = f" (+{len(refused) - SHOWN_GLOBALS} more)" if len(refused) > SHOWN_GLOBALS else ""
        raise FieldError(
            422,
            ["body", "file"],
            f"{filename!r}: refused: it holds pickled Python objects ({shown}{more}), not only "
            "tensors; nothing in it was run. Upload a safetensors file or a plain state dict "
            "(torch.save(model.state_dict(), path))",
        )
