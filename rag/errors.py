"""The project's own error types. Every user-facing failure is one of these, with a message naming the problem."""

from __future__ import annotations


class KgragError(Exception):
    """Base class of every error kgrag raises on purpose."""


class InputError(KgragError, ValueError):
    """A question, option or input file that cannot be used as given."""


class IndexLoadError(KgragError):
    """An index folder that is missing, from another format version, corrupt or inconsistent."""


class ModelLoadError(KgragError):
    """A model path that does not exist, a file with the wrong hash, or weights that cannot be loaded."""
