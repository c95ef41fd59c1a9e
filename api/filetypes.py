"""Recognising uploaded files by their first bytes (magic numbers), not by their names."""

from __future__ import annotations

import struct
from typing import Literal

ArchiveType = Literal["zip", "tar", "gzip", "bzip2", "xz"]
CheckpointType = Literal["safetensors", "torch_zip", "torch_pickle"]

SNIFF_BYTES = 512
"""How many leading bytes the sniffers look at (a tar header is 512 bytes)."""

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")


def sniff_archive(head: bytes) -> ArchiveType | None:
    """The archive type of a file from its first bytes, or None if it is no known archive."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    # POSIX (ustar) and GNU tar both carry "ustar" at offset 257 of the first header.
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def sniff_checkpoint(head: bytes) -> CheckpointType | None:
    """The checkpoint format from its first bytes, or None if it is none we can load safely."""
    if head.startswith(b"PK\x03\x04"):
        return "torch_zip"  # torch.save's default zip container
    if len(head) >= 9 and head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "torch_pickle"  # legacy torch.save; loaded with weights_only=True only
    if len(head) >= 10:
        # safetensors: u64 little-endian header length, then a JSON object.
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= 100 * 1024 * 1024 and head[8:9] == b"{":
            return "safetensors"
    return None

