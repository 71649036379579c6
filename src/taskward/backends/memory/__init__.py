"""The memory backend: the reference implementation of the backend contract, in dicts."""

from taskward.backends.memory.backend import MemoryBackend

__all__ = ["MemoryBackend"]
