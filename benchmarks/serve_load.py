"""Does adaptive batching make concurrency pay? `edgecnn serve` under load, measured in one run.

    flock /work/bench.lock .venv/bin/python benchmarks/serve_load.py            # 10,000 requests
    .venv/bin/python benchmarks/serve_load.py --rounds 1 --sequential 200 --concurrent 800  # quick

Starts `edgecnn serve` (the bundled model, default settings) on a free loopback port, then
alternates rounds of 1 sequential client and 32 concurrent clients (each on its own keep-alive
connection) posting generated 640x480 JPEGs to /v1/classify. Prints images/s of both and their
ratio (medians over rounds), the mean batch size under load (from the server's own /metrics),
p50 / p99 latency, every non-200 status (503 is the only acceptable error: the bounded queue
saying "retry"), and the server's RSS before and after all requests. Bounded: every phase stops
at its request count or --phase-seconds, whichever comes first; loopback only.

Also records the load average and the CPU that other processes used meanwhile (the machine is
shared): a ratio measured while others take the cores says less. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from edgecnn.tools.machine import environment
from edgecnn.tools.report_files import write_json, write_text
from edgecnn.tools.server_bench import measure_server, payloads

RESULTS = Path(__file__).resolve().parent / "results"


def start_server(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "edgecnn", "serve", "--port", "0", *args]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        print(line.rstrip(), file=sys.stderr)
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return proc, found.group(1)
    raise SystemExit("the server did not start")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds of a process (None: the whole machine's busy time)."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is None:
        with open("/proc/stat", encoding="ascii") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:9]]
        return (sum(ticks) - ticks[3] - ticks[4]) / tick
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def batch_totals(url: str) -> tuple[float, float]:
    """(images, batches) the server has run so far, from its Prometheus metrics."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    values = dict(re.findall(r"^(edgecnn_batch_size_(?:sum|count))\{[^}]*\} (\S+)$", text, re.M))
    return float(values["edgecnn_batch_size_sum"]), float(values["edgecnn_batch_size_count"])


def phase(url: str, images: list[bytes], clients: int, count: int, cap_s: float, pid: int) -> dict:
    """One measured phase, with the batches it caused and the CPU others used meanwhile."""
    before_batches = batch_totals(url)
    machine0, server0, own0 = cpu_seconds(), cpu_seconds(pid), time.process_time()
    report = measure_server(url, images, concurrency=clients, requests=count, duration=cap_s)
    machine1, server1, own1 = cpu_seconds(), cpu_seconds(pid), time.process_time()
    after_batches = batch_totals(url)
    images_run = after_batches[0] - before_batches[0]
    batches = after_batches[1] - before_batches[1]
    report["mean_batch"] = images_run / batches if batches else 0.0
    report["server_cpu_s"] = server1 - server0
    report["client_cpu_s"] = own1 - own0
    others = (machine1 - machine0) - report["server_cpu_s"] - report["client_cpu_s"]
    report["others_cpu_share"] = max(0.0, others) / (report["seconds"] * (os.cpu_count() or 1))
    return report


def cpu_ms(report: dict[str, Any]) -> float:
    """The server's CPU milliseconds per request in one phase."""
    return report["server_cpu_s"] * 1e3 / max(1, report["requests"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = environment()  # the load average before anything of ours runs
    images = payloads(None, count=64)  # generated 640x480 JPEGs of the shapes set
    proc, url = start_server(args.server_args)
    try:
        measure_server(url, images, concurrency=args.clients, requests=200)  # warm-up
        rss_before = rss_mb(proc.pid)
        rounds = []
        for number in range(args.rounds):
            sequential = phase(url, images, 1, args.sequential, args.phase_seconds, proc.pid)
            concurrent = phase(
                url, images, args.clients, args.concurrent, args.phase_seconds, proc.pid
            )
            rounds.append(
                {"sequential": sequential, "concurrent": concurrent, "rss_mb": rss_mb(proc.pid)}
            )
            print(
                f"round {number + 1}: 1 client {sequential['images_per_second']:.0f} images/s, "
                f"{args.clients} clients {concurrent['images_per_second']:.0f} images/s "
                f"(mean batch {concurrent['mean_batch']:.1f}; server CPU per request "
                f"{cpu_ms(sequential):.2f} / {cpu_ms(concurrent):.2f} ms; others used "
                f"{concurrent['others_cpu_share']:.0%} of the CPU; "
                f"RSS {rounds[-1]['rss_mb']:.0f} MB)",
                file=sys.stderr,
            )
        rss_after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    env["load_average_at_end"] = list(os.getloadavg())
    return summarize(args, env, rounds, rss_before, rss_after, len(images[0]))


def summarize(
    args: argparse.Namespace,
    env: dict[str, Any],
    rounds: list[dict],
    rss_before: float,
    rss_after: float,
    size: int,
) -> dict[str, Any]:
    def median(kind: str, key: str, sub: str | None = None) -> float:
        values = [r[kind][key][sub] if sub else r[kind][key] for r in rounds]
        return statistics.median(values)

    statuses: dict[str, int] = {}
    for r in rounds:
        for kind in ("sequential", "concurrent"):
            for code, n in r[kind]["status_counts"].items():
                statuses[code] = statuses.get(code, 0) + n
    seq = median("sequential", "images_per_second")
    conc = median("concurrent", "images_per_second")
    return {
        "environment": env,
        "settings": {
            "clients": args.clients,
            "rounds": args.rounds,
            "requests_per_phase": {"sequential": args.sequential, "concurrent": args.concurrent},
            "server_args": args.server_args,
            "image": f"640x480 JPEG, about {size // 1024} kB",
        },
        "sequential_images_per_second": seq,
        "concurrent_images_per_second": conc,
        "ratio": conc / seq if seq else 0.0,
        "mean_batch_under_load": median("concurrent", "mean_batch"),
        "latency_ms": {
            kind: {p: median(kind, "latency_ms", p) for p in ("p50", "p99")}
            for kind in ("sequential", "concurrent")
        },
        "requests": sum(statuses.values()),
        "status_counts": statuses,
        "non_503_errors": sum(n for code, n in statuses.items() if code not in ("200", "503")),
        "rss_mb": {"before": rss_before, "after": rss_after},
        "others_cpu_share": median("concurrent", "others_cpu_share"),
        "rounds": rounds,
    }


def markdown(s: dict[str, Any]) -> str:
    env = s["environment"]
    lat = s["latency_ms"]
    per_round = ", ".join(f"{r['rss_mb']:.0f}" for r in s["rounds"])
    return "\n".join(
        [
            f"| measure | 1 sequential client | {s['settings']['clients']} concurrent clients |",
            "| --- | --- | --- |",
            f"| images/s | {s['sequential_images_per_second']:.0f} | "
            f"{s['concurrent_images_per_second']:.0f} (**{s['ratio']:.2f}x**) |",
            f"| latency p50 / p99 (ms) | {lat['sequential']['p50']:.1f} / "
            f"{lat['sequential']['p99']:.1f} | {lat['concurrent']['p50']:.1f} / "
            f"{lat['concurrent']['p99']:.1f} |",
            f"| mean batch size | 1 | {s['mean_batch_under_load']:.1f} |",
            "",
            f"{s['requests']:,} requests ({s['settings']['image']}): statuses "
            f"{s['status_counts']}, **{s['non_503_errors']} errors other than 503**. Server RSS "
            f"{s['rss_mb']['before']:.0f} MB after warm-up, then after each round "
            f"{per_round} MB. Medians of {s['settings']['rounds']} interleaved rounds; "
            f"{env['cpu']['model']}, {env['cpu']['cores']} cores, load average "
            f"{env['load_average'][0]:.1f} at the start, {env['load_average_at_end'][0]:.1f} at "
            f"the end; other processes used "
            f"{s['others_cpu_share']:.0%} of the CPU during the concurrent phases.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=1000, help="requests per round")
    parser.add_argument("--concurrent", type=int, default=4000, help="requests per round")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--phase-seconds", type=float, default=60.0, help="cap per phase")
    parser.add_argument("--out", default=str(RESULTS / "serve_load"), help="PATH.json / PATH.md")
    parser.add_argument("server_args", nargs="*", help="extra `edgecnn serve` options (after --)")
    args = parser.parse_args()
    summary = run(args)
    text = markdown(summary)
    print(text)
    write_json(f"{args.out}.json", summary)
    write_text(f"{args.out}.md", text)


if __name__ == "__main__":
    main()
