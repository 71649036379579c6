"""Observability for taskward: events, Prometheus metrics, logs and tracing.

Each exporter lives in its own module and is optional. ``metrics.py`` is the only module in
taskward that imports ``prometheus_client``, and it does so lazily, so importing ``taskward``
never requires an exporter to be installed.
"""
