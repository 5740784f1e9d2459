"""The `numpy-lstm` command: train, sample, demo, explore, convert, bench (entry point: main)."""

from .main import main

__all__ = ["main"]
