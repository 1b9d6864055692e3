"""API parameter names in library messages -> the running verb's command-line flags.

Library modules never phrase errors as CLI flags: they name the parameter in backquotes
(`` `input_size` ``), which reads well from Python. The CLI maps each name to the flag of the
verb that ran, read from the verb's own Click options (``--input-size``); a name the verb has
no option for stays as it is.
"""

from __future__ import annotations

import click

from edgecnn.errors import with_names


def _flags(command: click.Command | None) -> dict[str, str]:
    """API parameter name -> the command's long flag (sub-commands of a group included)."""
    flags: dict[str, str] = {}
    commands = [command] if command is not None else []
    if isinstance(command, click.Group):
        commands += list(command.commands.values())
    for cmd in commands:
        for param in cmd.params:
            longs = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
            if not isinstance(param, click.Option) or not longs:
                continue
            for flag in longs:  # --format -> `format`, --no-reduce-range -> `no_reduce_range`
                flags.setdefault(flag[2:].replace("-", "_"), flag)
            if param.name:  # the destination too: --labels stores `labels_file`
                flags.setdefault(param.name, longs[0])
    return flags


def cli_message(message: str, command: click.Command | None) -> str:
    """``message`` with each `` `parameter` `` replaced by ``command``'s flag for it."""
    return with_names(message, _flags(command))


def current_flags() -> dict[str, str]:
    """API parameter name -> flag of the command running now (for messages written elsewhere:
    the rows Ray actors make)."""
    ctx = click.get_current_context(silent=True)
    return _flags(ctx.command if ctx else None)


def as_flags(message: str) -> str:
    """:func:`cli_message` for the command running now (for notes and warnings it prints)."""
    return with_names(message, current_flags())
