"""Errors raised for bad input data. Each message names the file, the line or column, and what was
expected, so a user can fix the input without reading a traceback from inside a parser."""

from __future__ import annotations


class DataValidationError(ValueError):
    """Input data that does not match the expected format (a ValueError, so callers may catch either)."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are neither in the data directory nor downloadable; the message says where
    shortlist looked and how to point it at a local copy."""


class ChecksumError(ValueError):
    """A downloaded file whose checksum differs from the published one (nothing is kept)."""
