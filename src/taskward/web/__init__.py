"""FastAPI integration for taskward (needs the ``web`` extra: ``pip install taskward[web]``).

Importing :mod:`taskward` never imports FastAPI; only this package does. It re-exports the
routers that applications include in their own app.
"""

from taskward.web.health import create_health_router, health_router

__all__ = ["create_health_router", "health_router"]
