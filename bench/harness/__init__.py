"""The side-by-side benchmark harness of taskward (issue 5); see bench/README.md."""
