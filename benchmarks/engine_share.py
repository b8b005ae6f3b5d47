"""What share of the coordinator's CPU the trust engine takes, from a py-spy profile.

``benchmarks/bench.py --only throughput --profile DIR`` records the coordinator
with py-spy during its throughput window and leaves ``DIR/throughput.txt``
(py-spy's raw format: one collapsed stack and its sample count per line).
This reads such a file and counts the samples whose stack passes through the
trust engine: the decision rule and credibility arithmetic, the ledger, bans,
companions for slow copies, and the inline checks. The decision rule also
does what plain majority voting would have to (grouping agreeing results),
so the share is an upper bound on what the engine adds. Since the
coordinator is the bottleneck of that window, its share of the samples is
about the share of throughput it costs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

#: Frames that belong to the engine: a file, or a file and function.
ENGINE = (
    "(qortex/core/credibility.py",
    "(qortex/core/quorum.py",
    "(qortex/core/ledger.py",
    "(qortex/core/stragglers.py",
    "(qortex/trust.py",
    "Intake._check (qortex/intake.py",
)


def share(lines: list[str]) -> tuple[int, int, Counter[str]]:
    """Total samples, engine samples, and engine samples by the first engine frame."""
    total = engine = 0
    where: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        for frame in stack.split(";"):
            if any(marker in frame for marker in ENGINE):
                engine += samples
                where[frame.rsplit(":", 1)[0] + ")"] += samples
                break
    return total, engine, where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy raw output (throughput.txt)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    total, engine, where = share(args.profile.read_text().splitlines())
    if total == 0:
        print(f"{args.profile}: no samples", file=sys.stderr)
        return 1
    percent = 100 * engine / total
    if args.json:
        print(json.dumps({"samples": total, "engine": engine, "percent": round(percent, 2)}))
        return 0
    print(f"{engine:,} of {total:,} samples in the trust engine: {percent:.1f} %")
    for frame, samples in where.most_common(10):
        print(f"  {100 * samples / total:5.1f} %  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
