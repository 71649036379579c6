"""A declared task module that fails at import (a missing setting, say): its jobs must fail."""

raise RuntimeError("TASKWARD_TEST_SETTING is not set")
