"""The one error type for files that cannot be read as what they claim to be."""

from __future__ import annotations

import os


class FileFormatError(ValueError):
    """A model, checkpoint, .pt, .onnx or .keras file is malformed, truncated, corrupted, declares
    sizes its bytes cannot hold, or uses something numpy-lstm cannot represent exactly. The
    message names the file and the problem. A ValueError, so `except ValueError` still catches it.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
