"""Settings of the test project, chosen by the environment.

``TASKWARD_DJANGO_DB``: ``sqlite`` (default) or ``postgres``.
- sqlite: Django's database and taskward's store are two files in ``TASKWARD_DJANGO_DIR``;
  an enqueue inside ``atomic()`` is committed at once (documented).
- postgres: ``TASKWARD_DJANGO_PG_URL`` (``postgresql://user@host:port/name``) is Django's
  database, and taskward stores its jobs there (no ``url`` option), so an enqueue inside
  ``atomic()`` joins the transaction.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
# Set once, so that the worker processes a test starts share the parent's files.
os.environ.setdefault("TASKWARD_DJANGO_DIR", tempfile.mkdtemp(prefix="twdj-"))
DATA_DIR = Path(os.environ["TASKWARD_DJANGO_DIR"])
DB = os.environ.get("TASKWARD_DJANGO_DB", "sqlite")

SECRET_KEY = "taskward-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
MIDDLEWARE: list[str] = []

try:  # Django >= 6 has the framework built in; older versions need the backport's app
    import django.tasks  # noqa: F401

    FRAMEWORK_APPS: list[str] = []
except ImportError:
    FRAMEWORK_APPS = ["django_tasks"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    *FRAMEWORK_APPS,
    "taskward.contrib.django",
    "shop",
]

if DB == "postgres":
    pg = urlsplit(os.environ["TASKWARD_DJANGO_PG_URL"])
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": pg.path.lstrip("/"),
            "USER": pg.username or "",
            "PASSWORD": pg.password or "",
            "HOST": pg.hostname or "",
            "PORT": str(pg.port or ""),
        }
    }
    STORE_OPTIONS: dict[str, object] = {}  # the store is Django's own database
    # A child process of a test (manage.py taskward_worker) works on the test database.
    if os.environ.get("TASKWARD_DJANGO_TEST_DB_NAME"):
        DATABASES["default"]["NAME"] = os.environ["TASKWARD_DJANGO_TEST_DB_NAME"]
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "shop.sqlite3"),
            # A file, not memory: the worker subprocesses of the tests open it too.
            "TEST": {"NAME": str(DATA_DIR / "test-shop.sqlite3")},
        }
    }
    if os.environ.get("TASKWARD_DJANGO_TEST_DB_NAME"):
        DATABASES["default"]["NAME"] = os.environ["TASKWARD_DJANGO_TEST_DB_NAME"]
    STORE_OPTIONS = {"url": f"sqlite:///{DATA_DIR / 'taskward.db'}"}

TASKS = {
    "default": {
        "BACKEND": "taskward.contrib.django.TaskwardBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {**STORE_OPTIONS, "default_max_attempts": 1, "poll_interval": 0.05},
    },
    # A second alias with retries, for the tests of attempts and errors.
    "retrying": {
        "BACKEND": "taskward.contrib.django.TaskwardBackend",
        "QUEUES": ["retries"],
        "OPTIONS": {
            **STORE_OPTIONS,
            "default_max_attempts": 3,
            "default_retry_delay": 0,
            "poll_interval": 0.05,
        },
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"], "level": "WARNING"},
}
