"""Zip archives from untrusted files (.pt and .keras are zip files): read the directory, refuse
what cannot be right, and read members only after their declared sizes are checked.

Every check runs before a byte is decompressed, so a corrupt or hostile archive fails here as a
`FileFormatError` naming the file — never as a zipfile, zlib or struct error, and never after
allocating what a forged size declares.
"""

from __future__ import annotations

import os
import zipfile

from .errors import FileFormatError

# Deflate expands at most ~1032:1; a member claiming more than that is forged, not compressed.
MAX_DEFLATE_RATIO = 1100


def read_directory(
    path: str | os.PathLike[str], *, stored_only: bool
) -> dict[str, zipfile.ZipInfo]:
    """name → entry of the zip archive at `path`, after checking that every entry's declared
    sizes fit in the file (uncompressed entries: size = compressed size; `stored_only`: no
    compression at all, as torch.save writes)."""
    file_size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except Exception as err:  # BadZipFile, struct.error, OverflowError, …: a broken directory
        raise FileFormatError(path, f"not a readable zip archive ({describe(err)})") from None
    members: dict[str, zipfile.ZipInfo] = {}
    for info in entries:
        if info.filename in members:
            raise FileFormatError(path, f"archive member {info.filename!r} appears twice")
        if info.flag_bits & 0x1:
            raise FileFormatError(path, f"archive member {info.filename!r} is encrypted")
        stored = info.compress_type == zipfile.ZIP_STORED
        if stored_only and not stored:
            raise FileFormatError(
                path, f"archive member {info.filename!r} is compressed (torch.save never is)"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FileFormatError(
                path, f"archive member {info.filename!r}: unsupported compression"
            )
        limit = info.compress_size if stored else MAX_DEFLATE_RATIO * info.compress_size
        if info.compress_size > file_size or info.file_size > limit:
            raise FileFormatError(
                path,
                f"archive member {info.filename!r} declares {info.file_size} bytes, more than "
                f"the file's {file_size} bytes can hold",
            )
        members[info.filename] = info
    return members


def read_member(path: str | os.PathLike[str], name: str) -> bytes:
    """The bytes of member `name` (its CRC checked), after :func:`read_directory` passed."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(name)
    except Exception as err:  # a bad CRC, a truncated or corrupt stream, a bad local header
        raise FileFormatError(
            path, f"archive member {name!r} is corrupt ({describe(err)})"
        ) from None


def describe(err: BaseException) -> str:
    """`Type: first line of the message`, for an error from a library reading a bad file."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
