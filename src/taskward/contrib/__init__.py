"""Integrations with the frameworks applications already run: Django, FastAPI/Starlette.

Each module imports its framework only when used, so ``import taskward`` never needs them.
"""
