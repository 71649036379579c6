"""Security suite (issue 7, item 9): pickle refusal, auth, CSRF, limits, fuzzing, secrets."""
