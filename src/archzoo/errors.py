"""Errors that the command line reports as one sentence instead of a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: an unknown name, a bad option, a corrupt file.

    The command line prints ``str(err)`` on stderr and exits with status 2.
    """


class DataError(UserError):
    """A dataset file is missing, corrupt or truncated; the message names the file."""


class CheckpointError(UserError):
    """A checkpoint or run directory is missing, truncated or does not match the model."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
