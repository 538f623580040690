"""User-facing error types.

Anything raised as an :class:`MmrftError` is a problem with the user's input (data, config, paths),
not a bug: the CLI prints ``error: <message>`` for it, without a traceback. Messages should therefore
say what is wrong, where, and what was expected.
"""


class MmrftError(Exception):
    """Base class for errors reported to the user without a traceback."""


class DataError(MmrftError):
    """A dataset or image could not be read or does not follow the dataset schema."""


class ConfigError(MmrftError):
    """A configuration value is missing, malformed, or inconsistent."""
