"""Library messages name API parameters; the CLI shows the running verb's flags instead."""

from __future__ import annotations

from edgecnn.cli.export import export
from edgecnn.cli.flags import cli_message


def test_parameters_become_the_verbs_flags() -> None:
    message = (
        "pass `labels_file` and `input_size`; `verify` images; `format`; "
        "`no_reduce_range`; `not_an_option` stays"
    )
    assert cli_message(message, export) == (
        "pass --labels and --input-size; --verify images; `format`; "
        "--no-reduce-range; `not_an_option` stays"
    )
    assert cli_message(message, None) == message  # from Python: parameter names
