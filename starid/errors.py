"""What the star identifier refuses: input that cannot be identified as given (a malformed request,
an unreadable frame, parameters out of range), with a message for whoever sent it."""

from __future__ import annotations


class StarInputError(ValueError):
    """Input the star identifier refuses; any other exception from it is a bug."""
