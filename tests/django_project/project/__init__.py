"""A small shop that enqueues its work through Django's tasks framework, stored by taskward."""
