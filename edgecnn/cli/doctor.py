"""``edgecnn doctor``: what this machine offers (versions, providers, display, cameras, CPU)."""

from __future__ import annotations

import json

import click

from edgecnn.tools.doctor import report


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(as_json: bool) -> None:
    """Check versions, which engines really load (and their devices), display, cameras, CPU."""
    data = report()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    cpu = data["cpu"]
    both_ort = {"onnxruntime", "onnxruntime-gpu"} <= set(data["packages"])
    lines = [
        f"edgecnn {data['edgecnn']} on Python {data['python']} ({data['platform']})",
        "packages: " + ", ".join(f"{k} {v}" for k, v in data["packages"].items()),
        f"onnxruntime providers available: {', '.join(data['providers_available'])}",
        f"CUDA: {'yes' if data['cuda_loads'] else 'no'} ({data['cuda_reason']})",
        "engines (--provider NAME; auto picks among those that load):",
        *[
            f"  {e['engine']:<9} {'loads' if e['loads'] else 'no':<6} "
            f"{', '.join(e['devices']) or '-':<12} "
            f"{e['reason'] if e['installed'] else 'not installed: ' + e['reason']}"
            for e in data["engines"]
        ],
        f"OpenCV {data['opencv']}; window: {'yes' if data['window'] else 'no'} "
        f"({data['window_reason']})",
        f"cameras: {', '.join(data['cameras']) or 'none found'}",
        f"CPU: {cpu['model']}, {cpu['cores']} cores; "
        + ", ".join(
            f"{flag} {'yes' if cpu[flag] else 'no'}" for flag in ("avx2", "avx512", "vnni", "neon")
        ),
        "int8: "
        + (
            "VNNI present: portable int8 models and those exported with --int8-target vnni "
            "are exact here"
            if cpu["vnni"]
            else "no VNNI: only portable int8 models (edgecnn export's default) are exact here"
        ),
    ]
    if both_ort:
        lines.append(
            "WARNING: onnxruntime and onnxruntime-gpu are both installed and overwrite "
            "each other; uninstall both and install one"
        )
    click.echo("\n".join(lines))
