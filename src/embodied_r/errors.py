"""Errors a user can fix, as opposed to bugs.

A :class:`UserError`'s message is the whole story for the terminal: what failed, which item (file,
record, video, version) and the fix. ``embodied-r`` prints only that message, also when the error
was raised inside a Dagster step, and keeps the stack trace in a log file; any other exception is
treated as a bug and shown as a one-line summary plus where its full trace is.

Subclass it (``class DatasetFormatError(UserError, ValueError)``) rather than raising it bare, so
callers can still catch the specific kind.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or state the user can fix; the message names the item and the fix (no traceback needed)."""


def user_error_names() -> set[str]:
    """Class names of :class:`UserError` and every subclass imported so far.

    A Dagster step failure carries the exception's class name only (``SerializableErrorInfo.cls_name``),
    so this is how the command line recognises a user error raised inside a run.
    """
    names, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names
