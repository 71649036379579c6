"""Django management commands of taskward (``taskward_worker``)."""
