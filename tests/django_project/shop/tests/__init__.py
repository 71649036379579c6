"""The shop's tests, run by Django's own test runner (python manage.py test)."""
