"""Uploaded photos on disk: type checked by magic bytes, size capped, written atomically.

The database row (``models.Media``) says who owns a file and what it is attached to; this
module only knows bytes and paths. Files are named by a random id, never by what the
uploader called them, and live under ``<media_dir>/<two hex>/``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

# What we accept, recognised by content: a renamed .exe stays refused.
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


class MediaError(ValueError):
    """A file that cannot be stored; the message names the form field."""


def sniff(data: bytes) -> str | None:
    """The image type of ``data`` from its first bytes, or None if it is not JPEG/PNG/WebP."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class StoredFile:
    """A file written under the media directory."""

    path: str  # relative to the media directory, with forward slashes
    content_type: str
    size: int
    sha256: str


class MediaStore:
    """Photos under one directory."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes: must be positive")
        self.root = Path(root)
        self.max_bytes = max_bytes

    def check(self, data: bytes, *, field: str) -> str:
        """The content type of an acceptable photo; :class:`MediaError` naming ``field`` if not."""
        if not data:
            raise MediaError(f"{field}: the file is empty")
        if len(data) > self.max_bytes:
            limit = self.max_bytes / (1024 * 1024)
            raise MediaError(f"{field}: the file is larger than {limit:.1f} MiB")
        content_type = sniff(data)
        if content_type is None:
            raise MediaError(f"{field}: only JPEG, PNG or WebP photos are accepted")
        return content_type

    def save(self, data: bytes, *, field: str) -> StoredFile:
        """Check ``data`` and write it under a fresh name; returns where it went."""
        content_type = self.check(data, field=field)
        name = secrets.token_hex(16)
        rel = f"{name[:2]}/{name}{EXTENSIONS[content_type]}"
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        # Write then rename, so a crash never leaves a half photo under the real name.
        with open(tmp, "wb") as fp:
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, dest)
        return StoredFile(rel, content_type, len(data), hashlib.sha256(data).hexdigest())

    def path(self, rel: str) -> Path:
        """The absolute path of a stored file; refuses anything outside the media directory."""
        root = self.root.resolve()
        full = (root / rel).resolve()
        if root not in full.parents:
            raise MediaError(f"path: {rel!r} is outside the media directory")
        return full

    def delete(self, rel: str) -> None:
        """Remove a stored file (missing is fine: deleting twice is harmless)."""
        try:
            self.path(rel).unlink()
        except FileNotFoundError:
            pass
