"""``python -m bench``: every benchmark in one run, printed as Markdown (``--smoke`` for a quick pass).

1. Servers: two empty-handler servers (sync gRPC and grpc.aio) and the real one, each its own process,
   driven by a separate load process with Quote, Reward, then QuoteBatch at each concurrency;
   throughput, p50/p99, CPU per call and per quote, and the ratios against the empty aio server.
2. Stages: what each stage of a Quote, a Reward and a QuoteBatch (per quote of a page) costs,
   in-process; the slowest is named.
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
from bench.load import BATCH_SIZE

README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
BASELINE = servers.EMPTY_AIO
SERVER_ORDER = (servers.EMPTY_AIO, servers.EMPTY_SYNC, servers.PRICEBANDIT)
RPC_NAMES = {"quote": "Quote", "reward": "Reward", "quote_batch": "QuoteBatch"}
# Issue 12's floors, each against the empty aio server in the same run.
QUOTE_CPU_RATIO_CEILING = 2.5  # single Quote at the top concurrency: server CPU per call
QUOTE_THROUGHPUT_FLOOR = 0.4  # single Quote at the top concurrency: calls per second
QUOTE_P50_RATIO_CEILING = 2.0  # single Quote at the lowest concurrency
QUOTE_P99_CEILING_MS = 3.0  # single Quote at the lowest concurrency, absolute
BATCH_CPU_RATIO_CEILING = 1.0  # QuoteBatch: server CPU per quote against the empty Quote's per call
BATCH_QUOTES_FLOOR = 1.0  # QuoteBatch: quotes per second against the empty Quote's calls per second
LEARNER_BUDGET_US = 40.0  # Pricer decision + update at dim 64, 11 arms


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def ratio(value: float | None, base: float | None) -> float | None:
    """``value / base``, or None where either is unknown (no /proc) or the base is zero."""
    return None if value is None or not base else value / base


def shown(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def bounded(name: str, value: float | None, bound: float, floor: bool, unit: str = "x") -> str:
    """A target line: the measured number, its bound, met or MISSED (and MISSED when unknown)."""
    if value is None:
        return f"{name}: unknown (server CPU not measured: no /proc, or too few calls): MISSED"
    ok = value >= bound if floor else value <= bound
    return f"{name}: {value:.2f}{unit} ({'floor' if floor else 'ceiling'} {bound:g}{unit}): {verdict(ok)}"


def server_section(rows: list[servers.Row]) -> tuple[str, list[str]]:
    """Two tables (single calls; QuoteBatch) with each server against the empty aio one, and the
    serving targets."""
    by_key = {(r.client, r.server, r.method, r.concurrency): r for r in rows}
    concurrencies = sorted({r.concurrency for r in rows})
    runs = sorted({(r.client, r.method) for r in rows if r.method != "quote_batch"},
                  key=lambda k: (k[0] != "python", k[1]))
    singles, batches = [], []
    for client, method in runs:
        for c in concurrencies:
            base = by_key[(client, BASELINE, method, c)]
            for name in SERVER_ORDER:
                r = by_key[(client, name, method, c)]
                singles.append([RPC_NAMES[method], client, c, name, r.throughput, r.p50_ms, r.p99_ms,
                                r.server_cpu_us, shown(ratio(r.throughput, base.throughput)),
                                shown(ratio(r.p99_ms, base.p99_ms)),
                                shown(ratio(r.server_cpu_us, base.server_cpu_us)), r.errors])
    for c in concurrencies:
        base = by_key[("python", BASELINE, "quote", c)]
        for name in SERVER_ORDER:
            r = by_key[("python", name, "quote_batch", c)]
            batches.append([RPC_NAMES["quote_batch"], "python", c, name, r.throughput,
                            round(r.quotes_per_second), r.p50_ms, r.p99_ms, r.server_cpu_us,
                            r.server_cpu_us_per_quote,
                            shown(ratio(r.quotes_per_second, base.throughput)),
                            shown(ratio(r.server_cpu_us_per_quote, base.server_cpu_us)), r.errors])
    page = by_key[("python", BASELINE, "quote_batch", concurrencies[0])].quotes_per_call
    text = (table(["RPC", "client", "concurrency", "server", "req/s", "p50 ms", "p99 ms", "CPU µs/call",
                   "req/s ÷ aio", "p99 ÷ aio", "CPU ÷ aio", "errors"], singles)
            + f"\n\nQuoteBatch, {page} products a call, per call and per quote; its ratios are against "
              "the empty aio server's single Quote (python client) at the same concurrency:\n\n"
            + table(["RPC", "client", "concurrency", "server", "batches/s", "quotes/s", "p50 ms", "p99 ms",
                     "CPU µs/batch", "CPU µs/quote", "quotes/s ÷ aio Quote req/s",
                     "CPU/quote ÷ aio Quote CPU/call", "errors"], batches))
    return text, serving_targets(by_key, concurrencies)


def serving_targets(by_key: dict[tuple[str, str, str, int], servers.Row], concurrencies: list[int]
                    ) -> list[str]:
    """Issue 12's serving floors: single Quote by h2load where installed (else the python client,
    said in the line), Reward against Quote and QuoteBatch by the python client."""
    top, low = max(concurrencies), min(concurrencies)
    client = "h2load" if ("h2load", BASELINE, "quote", top) in by_key else "python"
    how = "h2load" if client == "h2load" else "python client; h2load not installed"

    def pair(who: str, method: str, c: int) -> tuple[servers.Row, servers.Row]:
        return by_key[(who, servers.PRICEBANDIT, method, c)], by_key[(who, BASELINE, "quote", c)]

    real, base = pair(client, "quote", top)
    targets = [
        bounded(f"Quote server CPU per call at concurrency {top} ({how}), against the empty aio server's",
                ratio(real.server_cpu_us, base.server_cpu_us), QUOTE_CPU_RATIO_CEILING, floor=False),
        bounded(f"Quote throughput at concurrency {top} ({how}), against the empty aio server's",
                ratio(real.throughput, base.throughput), QUOTE_THROUGHPUT_FLOOR, floor=True),
    ]
    real, base = pair(client, "quote", low)
    targets += [
        bounded(f"Quote p50 at concurrency {low} ({how}), against the empty aio server's",
                ratio(real.p50_ms, base.p50_ms), QUOTE_P50_RATIO_CEILING, floor=False),
        bounded(f"Quote p99 at concurrency {low} ({how})", real.p99_ms, QUOTE_P99_CEILING_MS, floor=False,
                unit=" ms"),
    ]
    served = {(r.method, r.concurrency): r.throughput for r in by_key.values()
              if r.server == servers.PRICEBANDIT and r.client == "python"}
    slower = [c for c in concurrencies if served[("reward", c)] < served[("quote", c)]]
    targets.append("Reward at least as fast as Quote at every concurrency (python client): "
                   + (verdict(True) if not slower else f"MISSED at concurrency {slower}"))
    batch, base = pair("python", "quote_batch", top)
    targets += [
        bounded(f"QuoteBatch of {batch.quotes_per_call} server CPU per quote at concurrency {top} "
                "(python client), against the empty aio server's CPU per Quote",
                ratio(batch.server_cpu_us_per_quote, base.server_cpu_us), BATCH_CPU_RATIO_CEILING,
                floor=False),
        bounded(f"QuoteBatch of {batch.quotes_per_call} quotes per second at concurrency {top} "
                "(python client), against the empty aio server's Quote calls per second",
                ratio(batch.quotes_per_second, base.throughput), BATCH_QUOTES_FLOOR, floor=True),
    ]
    return targets


def stage_section(measured: list[stages.Stage]) -> str:
    slowest = max(measured, key=lambda s: s.micros)
    rows = [[s.rpc, s.name, s.micros] for s in measured]
    totals = {rpc: round(sum(s.micros for s in measured if s.rpc == rpc), 1)
              for rpc in ("Quote", "Reward", "QuoteBatch")}
    return (table(["RPC", "stage", "µs"], rows)
            + f"\n\nSum of stages: Quote {totals['Quote']} µs, Reward {totals['Reward']} µs, QuoteBatch "
              f"{totals['QuoteBatch']} µs a quote. "
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
    text += (f"\n\nMemory: a pending quote is {memory.pending_row_bytes:.0f} bytes as its stored record, "
             f"{memory.pending_disk_bytes:.0f} bytes of database with its indexes, and "
             f"{memory.decision_object_bytes} bytes as a Python object while its request is in flight "
             f"(pending quotes live in SQLite, not in memory); the default policy's statistics (the "
             f"shared demand model) are {memory.model_bytes} bytes; a user's value-model state is "
             f"{memory.user_state_bytes} bytes stored and {memory.user_state_object_bytes} bytes as a "
             f"Python object (`bench/value_model.py` measures it with the cache and SQLite around it).")
    targets = [bounded(f"Decision + update, {r.policy}, dim 64, 11 arms", r.total_us, LEARNER_BUDGET_US,
                       floor=False, unit=" µs") for r in pricer_rows if r.dim == 64 and r.arms == 11]
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
        "### Servers: empty handlers (grpc.aio and sync) vs pricebandit",
        "",
        "Each server is its own process; the load runs in another (`python`: a grpc.aio client, "
        "Quote, then Reward for those quotes, then QuoteBatch pages, a fifth as many calls; `h2load`: "
        "nghttp2's C client, one connection, Quote only, where installed). CPU is the server "
        "process's. Ratios (÷ aio) are against the empty `grpc.aio` server in the same run, the floor "
        "issue 12 sets; the empty sync server has the real one's server model.",
        "",
        server_text,
        "",
        "### Stage costs (in-process, best of 5, CPU µs except the store's wall-clock µs; "
        f"default config: LinUCB, dim 16, 11 arms; QuoteBatch: µs a quote of a {BATCH_SIZE}-product page)",
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
