"""The one error sweeplib raises for bad input: the field path and what is wrong with it."""

from __future__ import annotations


class SweepInputError(ValueError):
    """Bad sweep input. ``field`` is the path of the offending field in the request
    (``space.short_window.step``, ``constraints[1]``, ``objective.metric``); services map it to
    INVALID_ARGUMENT with a BadRequest field violation (HTTP 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
