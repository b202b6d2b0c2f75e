"""The optional extras (``.[ray]``, ``.[export]``, ...) and the one way every hint installs them.

Every message about a missing optional package ends with :func:`install_command`, the form the
README and the docs install with: from the checkout, pinned by ``constraints.txt``.
"""

from __future__ import annotations

from fedrl_lightning.errors import ConfigError

__all__ = ["install_command", "missing_extra"]


def install_command(extra: str) -> str:
    """The command that installs ``extra``, as the docs': ``pip install -c ... -e ".[ray]"``.

    Args:
        extra: An optional extra of ``pyproject.toml`` (``ray``, ``export``, ``box2d``, ...).

    Returns:
        The command, run in the checkout.
    """
    return f'pip install -c constraints.txt -e ".[{extra}]"'


def missing_extra(what: str, package: str, extra: str, reason: str | None = None) -> ConfigError:
    """The one-line error for ``what`` needing ``package``, which ``extra`` installs.

    Args:
        what: What needs the package, as the user gave it (``--format onnx``).
        package: The package that is missing (``onnx``).
        extra: The optional extra that installs it (``export``).
        reason: Why it cannot be used, when more than its absence (an import's own message).

    Returns:
        ``<what> needs the <package> package, which is not installed: pip install ...``.
    """
    detail = f" ({reason})" if reason else ""
    return ConfigError(
        f"{what} needs the {package} package, which is not installed{detail}: "
        f"{install_command(extra)}"
    )
