"""``python -m bench``: every benchmark in one run, printed as Markdown (``--smoke`` for a quick pass).

1. Servers: the empty-handler server and the real one, each its own process, driven by a separate
   load process with Quote then Reward at each concurrency; throughput, p50/p99 and the ratios.
2. Stages: what each stage of a Quote and a Reward costs, in-process; the slowest is named.
3. Learner: decision and update cost by policy, context dimension and number of arms; memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import learner_scaling, servers, stages

README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
QUOTE_RATIO_FLOOR = 0.60
P99_RATIO_CEILING = 2.0
LEARNER_BUDGET_US = 100.0


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def server_section(rows: list[servers.Row]) -> tuple[str, list[str]]:
    by_key = {(r.client, r.server, r.method, r.concurrency): r for r in rows}
    lines, targets = [], []
    concurrencies = sorted({r.concurrency for r in rows})
    runs = sorted({(r.client, r.method) for r in rows}, key=lambda k: (k[0] != "python", k[1]))
    for client, method in runs:
        for c in concurrencies:
            empty, real = by_key[(client, "empty", method, c)], by_key[(client, "pricebandit", method, c)]
            lines.append([
                method.capitalize(), client, c, empty.throughput, real.throughput,
                f"{real.throughput / empty.throughput:.2f}", empty.p50_ms, real.p50_ms, empty.p99_ms,
                real.p99_ms, f"{real.p99_ms / empty.p99_ms:.2f}", empty.server_cpu_us, real.server_cpu_us,
                real.errors,
            ])
    top = max(concurrencies)
    for client in sorted({r.client for r in rows}, key=lambda name: name != "python"):
        empty_q = by_key[(client, "empty", "quote", top)]
        real_q = by_key[(client, "pricebandit", "quote", top)]
        ratio, p99_ratio = real_q.throughput / empty_q.throughput, real_q.p99_ms / empty_q.p99_ms
        targets.append(f"Quote throughput at concurrency {top} ({client} client): {ratio:.2f} of the empty "
                       f"server (floor {QUOTE_RATIO_FLOOR:.2f}): {verdict(ratio >= QUOTE_RATIO_FLOOR)}")
        targets.append(f"Quote p99 at concurrency {top} ({client} client): {p99_ratio:.2f}x the empty "
                       f"server's (ceiling {P99_RATIO_CEILING:.1f}x): "
                       f"{verdict(p99_ratio <= P99_RATIO_CEILING)}")
    served = {(r.method, r.concurrency): r.throughput for r in rows
              if r.server == "pricebandit" and r.client == "python"}
    slower = [c for c in concurrencies if served[("reward", c)] < served[("quote", c)]]
    targets.append("Reward at least as fast as Quote at every concurrency: "
                   + (verdict(True) if not slower else f"MISSED at concurrency {slower}"))
    header = ["RPC", "client", "concurrency", "empty req/s", "pricebandit req/s", "ratio", "empty p50 ms",
              "pricebandit p50 ms", "empty p99 ms", "pricebandit p99 ms", "p99 ratio",
              "empty CPU µs/call", "pricebandit CPU µs/call", "errors"]
    return table(header, lines), targets


def stage_section(measured: list[stages.Stage]) -> str:
    slowest = max(measured, key=lambda s: s.micros)
    rows = [[s.rpc, s.name, s.micros] for s in measured]
    totals = {rpc: round(sum(s.micros for s in measured if s.rpc == rpc), 1) for rpc in ("Quote", "Reward")}
    return (table(["RPC", "stage", "µs"], rows)
            + f"\n\nSum of stages: Quote {totals['Quote']} µs, Reward {totals['Reward']} µs. "
            + f"Slowest stage: **{slowest.rpc} {slowest.name}, {slowest.micros} µs**.")


def learner_section(rows: list[learner_scaling.Scaling], pricer_rows: list[learner_scaling.Scaling],
                    memory: learner_scaling.Memory) -> tuple[str, list[str]]:
    arms = sorted({r.arms for r in rows})
    by_key = {(r.policy, r.dim, r.arms): r for r in rows}
    lines = []
    for policy in dict.fromkeys(r.policy for r in rows):
        for dim in sorted({r.dim for r in rows}):
            lines.append([policy, dim] + [
                f"{by_key[(policy, dim, k)].decide_us} + {by_key[(policy, dim, k)].update_us} = "
                f"{by_key[(policy, dim, k)].total_us}" for k in arms])
    text = ("Decision + update = total, CPU µs, best of 5 (policy alone: `select` with its seeded "
            "generator, then `learn_one`):\n\n"
            + table(["policy", "dim"] + [f"{k} arms" for k in arms], lines))
    text += ("\n\nThe whole learner path (`Pricer.quote`: features, guardrails, policy, decision "
             "record; then `Pricer.update`):\n\n" + table(
                 ["path", "dim", "arms", "decision µs", "update µs", "total µs"],
                 [[r.policy, r.dim, r.arms, r.decide_us, r.update_us, r.total_us] for r in pricer_rows]))
    text += (f"\n\nMemory: a pending quote is {memory.pending_row_bytes:.0f} bytes of JSON, "
             f"{memory.pending_disk_bytes:.0f} bytes of database with its indexes, and "
             f"{memory.decision_object_bytes} bytes as a Python object while its request is in flight "
             f"(pending quotes live in SQLite, not in memory); the default policy's statistics (the "
             f"shared demand model) are {memory.model_bytes} bytes; a user's value-model state is "
             f"{memory.user_state_bytes} bytes stored and {memory.user_state_object_bytes} bytes as a "
             f"Python object (`bench/value_model.py` measures it with the cache and SQLite around it).")
    targets = []
    for r in pricer_rows + [r for r in rows if r.dim == 64 and r.arms == 11]:
        if r.dim == 64 and r.arms == 11:
            targets.append(f"Decision + update, {r.policy}, dim 64, 11 arms: {r.total_us} µs "
                           f"(budget {LEARNER_BUDGET_US:.0f}): {verdict(r.total_us < LEARNER_BUDGET_US)}")
    return text, targets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="timed calls per RPC and concurrency")
    parser.add_argument("--warmup", type=int, default=200, help="untimed quotes before each run")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--learner-count", type=int, default=1000, help="decisions timed per learner cell")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: checks that it all runs")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--readme", type=Path,
                        help=f"also put the report in this file between {README_START} and {README_END}")
    args = parser.parse_args(argv)
    dims: tuple[int, ...] = learner_scaling.DIMS
    arms: tuple[int, ...] = learner_scaling.ARMS
    if args.smoke:
        args.requests, args.warmup, args.learner_count = 20, 5, 20
        dims, arms = (16,), (5,)
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]

    server_rows = servers.compare(args.requests, concurrencies, args.warmup)
    server_text, targets = server_section(server_rows)
    stage_text = stage_section(stages.measure(max(args.learner_count, 50)))
    learner_rows = learner_scaling.scaling(args.learner_count, dims, arms)
    pricer_rows = [learner_scaling.pricer_row(policy, dim, 11, args.learner_count)
                   for policy in ("linucb", "thompson") for dim in (16, 64)]
    learner_text, learner_targets = learner_section(
        learner_rows, pricer_rows, learner_scaling.memory(max(args.learner_count, 50)))

    report = "\n".join([
        f"Run {started} on {os.cpu_count()} cores ({platform.machine()}, Python "
        f"{platform.python_version()}), load average {load:.2f} at the start; "
        f"{args.requests} timed calls per row after {args.warmup} warm-up quotes.",
        "",
        "### Servers: empty handler vs pricebandit",
        "",
        "Each server is its own process; the load runs in another (`python`: a grpc.aio client, "
        "Quote then Reward for those quotes; `h2load`: nghttp2's C client, one connection, "
        "Quote only, where installed). CPU is the server process's, per call.",
        "",
        server_text,
        "",
        "### Stage costs (in-process, best of 5, CPU µs except the store's wall-clock µs; "
        "default config: LinUCB, dim 16, 11 arms)",
        "",
        stage_text,
        "",
        "### Learner scaling",
        "",
        learner_text,
        "",
        "### Targets",
        "",
        *(f"- {line}" for line in targets + learner_targets),
    ])
    print(report)
    if args.markdown is not None:
        args.markdown.write_text(report + "\n")
    if args.readme is not None:
        replace_block(args.readme, report.replace("\n### ", "\n#### "))
    return 0


def replace_block(path: Path, block: str) -> None:
    """Replace what lies between the README markers with ``block``."""
    text = path.read_text()
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    path.write_text(text[:start] + "\n" + block + "\n" + text[end:])


if __name__ == "__main__":
    sys.exit(main())
