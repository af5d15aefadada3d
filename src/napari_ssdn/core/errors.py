"""Errors meant for the user: one sentence naming the argument, the value and the remedy."""


class SSDNError(Exception):
    """Bad input or state that the user can fix; the message says how."""


class SSDNWarning(UserWarning):
    """Something the user should know about a result that was still produced."""


class ModelFileError(SSDNError):
    """A model file is missing, corrupt or does not fit the data."""
