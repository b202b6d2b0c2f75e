"""The one exception type that the command line reports as a single line."""

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A setting or input file is invalid; the message names the offending option or file."""
