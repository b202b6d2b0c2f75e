"""The exceptions that the command line reports as a single line."""

__all__ = ["ConfigError", "FederationError"]


class ConfigError(ValueError):
    """A setting or input file is invalid; the message names the offending option or file."""


class FederationError(RuntimeError):
    """A run cannot go on, such as when too few agents of a round succeed."""
