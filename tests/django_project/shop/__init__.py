"""The test project's one app: orders, and the tasks that follow them up."""
