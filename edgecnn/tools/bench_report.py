"""Rendering a benchmark report (the dict :class:`~.model_bench.Benchmark` returns) for people:
a terminal table, a Markdown document and a PNG plot (matplotlib via :mod:`edgecnn.tools.plots`).
The JSON file is the report itself, written with :func:`edgecnn.tools.report_files.write_json`."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecnn.printable import printable
from edgecnn.tools import plots

_LATENCY_KEYS = ("min", "mean", "p50", "p90", "p95", "p99", "max")

#: The terminal report fits this many columns; Markdown and JSON keep every column.
TERMINAL_WIDTH = 100
#: Columns the terminal drops first, in order, until a table fits (all stay in Markdown / JSON).
_DROP_FIRST = (
    *("p90 ms", "min ms", "mean ms", "post ms", "p99 ms", "images", "ms/img", "max ms"),
    *("prep ms", "others CPU"),
)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def environment_lines(report: dict[str, Any]) -> list[str]:
    """The environment block: provider, versions, CPU, load, models with hash and precision."""
    env = report["environment"]
    cpu = env["cpu"]
    flags = [name for name in ("avx2", "avx512", "vnni", "neon") if cpu.get(name)]
    lines = [
        f"provider {env.get('provider')} (requested {report['settings']['provider_requested']}); "
        f"onnxruntime {env['onnxruntime']}, OpenCV {env['opencv']}, numpy {env['numpy']}, "
        f"Python {env['python']}",
        f"CPU {cpu['model']} ({', '.join(flags) or 'no AVX2'}), {cpu['cores']} cores usable; "
        f"load average {env.get('load_average')}; {env['date']}",
    ]
    for model in report["models"]:
        lines.append(
            f"model {model['name']}: {model['precision']}, "
            f"{'x'.join(map(str, model['input']))}, sha256 {model['sha256'][:16]}, "
            f"provider {model['provider']}{_interpolation(model)}{_foreign(model)}"
        )
    keras = report.get("keras")
    if keras:
        lines.append(
            f"keras {keras['path']}: Keras {keras['keras']}, sha256 {keras['sha256'][:16]}"
        )
    if report.get("interrupted"):
        lines.append("INTERRUPTED: partial results (what was measured before Ctrl-C)")
    return lines


def _interpolation(model: dict[str, Any]) -> str:
    """``; interpolation X, not the model's own Y`` when the run resized otherwise."""
    used, own = model.get("interpolation"), model.get("model_interpolation")
    if used is None or used == own:
        return ""
    return f"; interpolation {used}, not the model's own {own}"


def _foreign(model: dict[str, Any]) -> str:
    """``; no edgecnn metadata, run as described: ...`` for a model described by its caller."""
    pre = model.get("preprocessing") or {}
    if pre.get("source") != "foreign":
        return ""
    return (
        f"; no edgecnn metadata, run as described: {pre['color']}, fit {pre['fit']}, "
        f"interpolation {pre['interpolation']}"
    )


def model_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the model-only table (latency per batch in ms)."""
    header = ["model", "threads", "batch", "runs", *(f"{k} ms" for k in _LATENCY_KEYS)]
    header += ["ms/img", "img/s", "vs first", "vs keras", "vs fastest", "top-1 agree"]
    header += ["others CPU"]
    rows = []
    for row in report["model_only"]:
        stats = row["latency_ms"]
        rows.append(
            [
                row["model"],
                str(row["threads"]),
                str(row["batch_size"]),
                str(stats["count"]),
                *(_fmt(stats.get(k)) for k in _LATENCY_KEYS),
                _fmt(row["per_image_ms"]),
                _fmt(row["images_per_second"], 1),
                _ratio(row.get("speedup_vs_first")),
                _ratio(row.get("speedup_vs_keras")),
                _ratio(row.get("ratio_to_fastest")),  # --provider list / all
                _share(row.get("top1_agreement")),  # vs onnxruntime CPU on the same inputs
                _share(row.get("others_cpu_share")),
            ]
        )
    return header, rows


def warmup_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the warm-up table (session creation, first run)."""
    header = ["model", "threads", "session s", "first run ms", "first batch"]
    rows = [
        [
            w["model"],
            str(w["threads"]),
            _fmt(w["session_s"], 3),
            _fmt(w.get("first_run_ms")),
            str(w.get("first_batch", "-")),
        ]
        for w in report["warmup"]
    ]
    keras = report.get("keras")
    if keras:
        rows.append(
            ["keras", "tf-default", _fmt(keras["load_s"], 3), _fmt(keras.get("first_run_ms")), "-"]
        )
    return header, rows


def pipeline_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the end-to-end table (one-core stage means, pipeline vs limit)."""
    header = ["model", "threads", "batch", "images", "img/s", "limit img/s", "% limit"]
    header += ["decode ms", "prep ms", "infer ms", "post ms", "vs keras"]
    header += ["others CPU"]
    rows = []
    for row in report["end_to_end"]:
        one = row["one_core_ms"]
        fraction = row.get("fraction_of_limit")
        rows.append(
            [
                row["model"],
                str(row["threads"]),
                str(row["batch_size"]),
                str(row["images"]),
                _fmt(row["images_per_second"], 1),
                _fmt(row.get("limit_images_per_second"), 1),
                "-" if fraction is None else f"{fraction:.0%}",
                _fmt(one["decode"].get("mean")),
                _fmt(one["preprocess"].get("mean")),
                _fmt(row.get("inference_per_image_ms")),
                _fmt(one["postprocess"].get("mean"), 3),
                _ratio(row.get("speedup_vs_keras_pipeline")),
                _share(row.get("others_cpu_share")),
            ]
        )
    keras = report.get("keras_pipeline")
    if keras:
        rows.append(
            ["keras tutorial pipeline", "tf-default", "16", str(keras["images"])]
            + [_fmt(keras["images_per_second"], 1)]
            + ["-"] * 7
            + [_share(keras.get("others_cpu_share"))]
        )
    return header, rows


def _without_empty(
    header: Sequence[str], rows: Sequence[Sequence[str]], report: dict[str, Any]
) -> tuple[list[str], list[list[str]]]:
    """Drop columns that say nothing: all "-", or ``vs first`` when one model was measured."""
    keep = [
        i
        for i, name in enumerate(header)
        if any(row[i] != "-" for row in rows)
        and not (name == "vs first" and len(report["models"]) < 2)
    ]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


def _fitted(
    header: Sequence[str], rows: Sequence[Sequence[str]], width: int = TERMINAL_WIDTH
) -> tuple[list[str], list[list[str]]]:
    """Drop the least important columns (:data:`_DROP_FIRST`) until the table fits ``width``."""
    header, rows = list(header), [list(r) for r in rows]
    for name in _DROP_FIRST:
        if max(map(len, _aligned(header, rows))) <= width:
            break
        if name in header:
            i = header.index(name)
            header.pop(i)
            for row in rows:
                row.pop(i)
    return header, rows


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    numeric = [i >= 1 for i in range(len(header))]
    out = []
    for cells in (header, *rows):
        parts = [
            str(c).rjust(w) if numeric[i] and cells is not header else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        out.append("  ".join(parts).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def _verdicts(report: dict[str, Any]) -> list[str]:
    verdicts = [
        f"{r['model']} threads {r['threads']} batch {r['batch_size']}: {r['verdict']}"
        for r in report["end_to_end"]
    ]
    unreadable = report.get("unreadable") or []
    if unreadable:  # counted as failed in the end-to-end rows: say which and why
        first = unreadable[0]
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        verdicts.append(
            f"not decodable, failed in every end-to-end run: {len(unreadable)} input(s), "
            f"e.g. {printable(first['source'])}: {printable(first['error'])}{more}"
        )
    return verdicts


def _wrapped(lines: Sequence[str], width: int = TERMINAL_WIDTH) -> list[str]:
    """Long lines folded at ``width``, continuation lines indented."""
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False) or [""]
    return out


def terminal(report: dict[str, Any]) -> str:
    """A readable plain-text report that fits :data:`TERMINAL_WIDTH` columns (the Markdown and
    JSON reports keep every column)."""
    lines = _wrapped(environment_lines(report))
    lines.append("others CPU: share of this machine's CPU used by other processes meanwhile")
    for title, table in (
        ("warm-up (not in the statistics)", warmup_table(report)),
        ("model only: latency per batch", model_table(report)),
        ("end to end: stages on one core, pipeline as `edgecnn classify` runs it", None),
    ):
        if table is None:
            if not report["end_to_end"] and not report.get("keras_pipeline"):
                continue
            table = pipeline_table(report)
        if table[1]:
            lines += ["", title, *_aligned(*_fitted(*_without_empty(*table, report)))]
    verdicts = _verdicts(report)
    if verdicts:
        lines += ["", *_wrapped(verdicts)]
    return "\n".join(lines)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: environment list and one table per mode."""
    lines = ["# edgecnn bench", ""]
    lines += [f"- {line}" for line in environment_lines(report)]
    for title, (header, rows) in (
        ("Warm-up", warmup_table(report)),
        ("Model only (latency per batch)", model_table(report)),
        ("End to end", pipeline_table(report)),
    ):
        if rows:
            lines += ["", f"## {title}", "", *_md_table(header, rows)]
    verdicts = _verdicts(report)
    if verdicts:
        lines += ["", *[f"- {v}" for v in verdicts]]
    return "\n".join(lines) + "\n"


def _short(name: str) -> str:
    return name.removesuffix(".onnx")


def _threads(threads: str) -> str:
    """``"1 thread"``, ``"4 threads"``, ``"auto threads"``."""
    return "1 thread" if str(threads) == "1" else f"{threads} threads"


def plot(report: dict[str, Any], path: str | Path) -> None:
    """PNG: per-image latency distribution per configuration, and throughput per batch size."""
    plt = plots.pyplot()
    rows = report["model_only"]
    panels = 3 if report["end_to_end"] else 2
    first = max(6.0, 0.3 * len(rows))
    widths = [first] + [6.0] * (panels - 1)
    fig, axes = plt.subplots(
        1, panels, figsize=(sum(widths), 5.5), squeeze=False, width_ratios=widths
    )
    ax = axes[0][0]
    labels = [f"{_short(r['model'])} {r['threads']} thr b{r['batch_size']}" for r in rows]
    data = [[s / r["batch_size"] for s in r["samples_ms"]] for r in rows]
    if data:
        ax.boxplot(data, showfliers=True, whis=(5, 95))
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")  # ONNX at 0.2 ms and Keras at 30 ms both readable
    ax.set_ylabel("ms per image, log scale (whiskers p5-p95)")
    ax.set_title("Latency distribution (model only)")
    ax = axes[0][1]
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        series.setdefault(f"{_short(r['model'])}, {_threads(r['threads'])}", []).append(
            (r["batch_size"], r["images_per_second"])
        )
    for name, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.set_xscale("log", base=2)
    if report.get("keras"):
        ax.set_yscale("log")  # Keras at 100 images/s beside ONNX at 10,000: both readable
    ax.set_xlabel("batch size")
    ax.set_ylabel("images/s" + (", log scale" if report.get("keras") else ""))
    ax.set_title("Throughput (model only)")
    ax.legend(fontsize=7)
    if panels == 3:
        ax = axes[0][2]
        e2e = report["end_to_end"]
        names = [f"{_short(r['model'])} {r['threads']} thr b{r['batch_size']}" for r in e2e]
        xs = range(len(e2e))
        ax.bar([x - 0.2 for x in xs], [r["images_per_second"] for r in e2e], 0.4, label="pipeline")
        limits = [r.get("limit_images_per_second") or 0 for r in e2e]
        ax.bar([x + 0.2 for x in xs], limits, 0.4, label="machine limit")
        keras = report.get("keras_pipeline")
        if keras:
            ax.axhline(keras["images_per_second"], color="gray", ls="--", label="Keras tutorial")
        ax.set_xticks(list(xs), names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("images/s")
        ax.set_title("End to end")
        ax.legend(fontsize=7)
    env = report["environment"]
    fig.suptitle(
        f"{env['cpu']['model']}, {env['cpu']['cores']} cores, {env.get('provider')}, "
        f"onnxruntime {env['onnxruntime']}",
        fontsize=9,
    )
    fig.tight_layout()
    plots.save(fig, path, dpi=110)
