"""Load a file of ``examples/`` as a module of its own, for the tests that drive it."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextlib.contextmanager
def loaded_example(filename: str) -> Iterator[ModuleType]:
    """``examples/<filename>`` imported fresh (it starts nothing on import), then forgotten."""
    name = f"taskward_example_{Path(filename).stem}"
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / filename)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]
