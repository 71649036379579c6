"""The version of the installed taskward package (``taskward.__version__``, ``--version``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

__all__ = ["__version__"]

UNKNOWN: Final = "0+unknown"
"""The version reported when taskward runs from a source tree that was never installed."""


def installed_version() -> str:
    """The version pip recorded for the ``taskward`` distribution, or :data:`UNKNOWN`."""
    try:
        return version("taskward")
    except PackageNotFoundError:
        return UNKNOWN


__version__: Final = installed_version()
