"""Importable helpers for tests (tasks named by ``module:function`` and CLI apps)."""
