"""The attack of issue 11, as ops would mount it against a server process, with its figures.

1. SIGKILL ledger (``bench/ledger.py``): N restarts under load, every acknowledged quote and reward
   checked against the state file (lost and doubled must be 0, the model equal to a replay).
2. Malformed bytes (``bench/malformed.py``): random, truncated, bit-flipped, invalid UTF-8 and huge
   payloads, codes counted (0 INTERNAL, 0 UNKNOWN), RSS around 20,000 undecodable calls, SIGTERM after.
3. Overload (``bench/overload.py``): 200 callers with 100 ms deadlines; the share of the quotes the
   server stored whose caller had already left.
4. Store fault (``bench/store_fault.py``): the state file deleted under a running server; the time
   until health says NOT_SERVING, the code of the next write, and SIGTERM's exit code (3).

    python -m bench.attack           # the full form (several minutes)
    python -m bench.attack --short   # the short form CI runs (tests/test_attack.py)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.ledger import LedgerReport, run_sigkill
from bench.malformed import MalformedReport, run_malformed
from bench.overload import OverloadReport, run_overload
from bench.store_fault import StoreFaultReport, run_store_fault

STORE_FAULT_EXIT_CODE = 3
"""``pricebandit-server``'s documented code for a stop whose final snapshot the store refused."""


@dataclass(frozen=True)
class AttackSize:
    restarts: int = 20
    malformed_calls: int = 5_000
    undecodable_calls: int = 20_000
    callers: int = 200
    deadline_seconds: float = 0.1
    overload_seconds: float = 20.0


SHORT = AttackSize(restarts=1, malformed_calls=300, undecodable_calls=500, callers=20,
                   overload_seconds=1.5)


@dataclass
class AttackReport:
    sigkill: LedgerReport
    malformed: MalformedReport
    overload: OverloadReport
    store_fault: StoreFaultReport

    @property
    def holds(self) -> bool:
        """What must hold whatever the machine's speed (the RSS bound is for the full form)."""
        ledger, garbage = self.sigkill, self.malformed
        return (ledger.lost == ledger.doubled == ledger.wrong_rewards == 0 and ledger.model_equals_replay
                and ledger.final_exit_code == 0 and garbage.failures == 0 and garbage.tracebacks_logged == 0
                and garbage.sigterm_exit_code == 0 and self.overload.exit_code == 0
                and 0 <= self.store_fault.seconds_to_not_serving <= 1.0
                and self.store_fault.write_after_fault == "UNAVAILABLE"
                and self.store_fault.exit_code == STORE_FAULT_EXIT_CODE
                and self.store_fault.tracebacks_logged == 0)


def run_attack(size: AttackSize) -> AttackReport:
    with tempfile.TemporaryDirectory() as scratch:
        sigkill = run_sigkill(Path(scratch), size.restarts)
    return AttackReport(
        sigkill=sigkill,
        malformed=run_malformed(size.malformed_calls, size.undecodable_calls),
        overload=run_overload(size.callers, size.deadline_seconds, size.overload_seconds),
        store_fault=run_store_fault(),
    )


def summary(report: AttackReport) -> list[str]:
    ledger, garbage, overload, fault = report.sigkill, report.malformed, report.overload, report.store_fault
    codes: dict[str, int] = {}
    for key, count in garbage.codes.items():
        code = key.split()[-1]
        codes[code] = codes.get(code, 0) + count
    return [
        f"SIGKILL: {ledger.killed_by_sigkill}/{ledger.restarts} restarts survived; "
        f"{ledger.acknowledged_quotes} quotes and {ledger.acknowledged_rewards} rewards acknowledged; "
        f"lost {ledger.lost}, doubled {ledger.doubled}, wrong rewards {ledger.wrong_rewards}; "
        f"model equals replay: {ledger.model_equals_replay}",
        f"malformed: {garbage.sent} payloads, codes {codes}; INTERNAL+UNKNOWN {garbage.failures}; "
        f"tracebacks logged {garbage.tracebacks_logged}",
        f"malformed: RSS {garbage.rss_before_mib:.1f} MiB before and {garbage.rss_after_mib:.1f} MiB after "
        f"{garbage.undecodable_sent} undecodable calls ({garbage.rss_growth_mib:+.1f} MiB); SIGTERM "
        f"exit {garbage.sigterm_exit_code} in {garbage.sigterm_seconds:.2f} s",
        f"overload: {overload.callers} callers, {overload.deadline_seconds * 1000:.0f} ms deadlines, "
        f"{overload.seconds:.0f} s: told {overload.codes}; {overload.stored} quotes stored, "
        f"{overload.stored_for_departed} for departed callers ({overload.departed_share:.1%}); server CPU "
        f"{overload.server_cpu_seconds:.1f} s",
        f"store fault: state file deleted; NOT_SERVING after {fault.seconds_to_not_serving:.3f} s, "
        f"next write {fault.write_after_fault}, SIGTERM exit {fault.exit_code} "
        f"(tracebacks logged {fault.tracebacks_logged})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the short form CI runs")
    parser.add_argument("--restarts", type=int, help=f"SIGKILL restarts (default {AttackSize.restarts})")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    size = SHORT if args.short else AttackSize()
    if args.restarts is not None:
        size = AttackSize(**{**asdict(size), "restarts": args.restarts})
    report = run_attack(size)
    for line in summary(report):
        print(line)
    print("holds:", report.holds)
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    raise SystemExit(0 if report.holds else 1)


if __name__ == "__main__":
    main()
