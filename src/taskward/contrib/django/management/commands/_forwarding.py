"""The base of the commands that hand their command line to taskward's CLI (``forward``)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskward.contrib.django.forward import django_args, forward

_SUPERVISION_OPTIONS = frozenset(
    {"--processes", "--max-jobs-per-process", "--max-memory-per-process"}
)


class ForwardingCommand(BaseCommand):  # type: ignore[misc]
    """A management command whose arguments, in order, are a taskward command line."""

    #: Prepended to the arguments (``["worker"]`` for ``taskward_worker``).
    command: tuple[str, ...] = ()

    def run_from_argv(self, argv: list[str]) -> None:
        """Forward the command line (click exits the process with its status)."""
        prog = f"{os.path.basename(argv[0])} {argv[1]}"
        forward(argv[2:], prog, standalone=True, stderr=self.stderr, named=self.command)

    def print_help(self, prog_name: str, subcommand: str) -> None:
        """Show taskward's own help for the command."""
        with contextlib.suppress(SystemExit):  # click exits after printing the help
            forward(
                ["--help"],
                f"{os.path.basename(prog_name)} {subcommand}",
                standalone=True,
                stderr=self.stderr,
                named=self.command,
            )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        """A parser that hands every argument, in order, to taskward.

        ``call_command("taskward_worker", "--burst", "-q", "default")`` parses its arguments
        with this parser; taskward's options are many and checked by taskward itself.
        """
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_known = parser.parse_known_args

        def parse_args(args: Any = None, namespace: Any = None) -> Any:
            options, _ = parse_known([], namespace)  # Django's defaults (verbosity…)
            options.taskward_args = django_args(list(args or []))
            return options

        parser.parse_args = parse_args
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        """Run from ``call_command``; a non-zero exit status becomes ``CommandError``."""
        argv = [*options.get("taskward_args", []), *args]
        supervising = [a for a in argv if a.split("=", 1)[0] in _SUPERVISION_OPTIONS]
        if supervising:
            # A supervisor re-runs its own command line for each child: here that would be
            # the program that called call_command, not a worker.
            raise CommandError(
                f"{supervising[0].split('=', 1)[0]} works from a shell only "
                f"(manage.py {'_'.join(('taskward', *self.command))} …), "
                "not through call_command"
            )
        prog = " ".join(("taskward", *self.command))
        code = forward(argv, prog, standalone=False, stderr=self.stderr, named=self.command)
        if code:
            raise CommandError(f"taskward exited with status {code}", returncode=code)
