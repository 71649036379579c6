"""FastAPI integration for taskward (needs the ``web`` extra: ``pip install taskward[web]``).

Importing :mod:`taskward` never imports FastAPI; only this package does. It re-exports the
routers that applications include in their own app, and :func:`create_app`, the standalone
admin app behind ``taskward dashboard``. The routers add the security headers to their own
answers; :class:`SecurityHeadersMiddleware` does it for a whole application.
"""

from taskward.web.api import Admin, create_admin_router
from taskward.web.app import create_app, create_metrics_router
from taskward.web.auth import AdminAuth
from taskward.web.dashboard import create_dashboard_router
from taskward.web.headers import SecurityHeadersMiddleware
from taskward.web.health import create_health_router, health_router
from taskward.web.job_health import create_jobs_health_router

__all__ = [
    "Admin",
    "AdminAuth",
    "SecurityHeadersMiddleware",
    "create_admin_router",
    "create_app",
    "create_dashboard_router",
    "create_health_router",
    "create_jobs_health_router",
    "create_metrics_router",
    "health_router",
]
