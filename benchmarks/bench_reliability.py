"""Reliability: every broken input of the case table (tests/reliability) through every command that reads it.

    .venv/bin/python benchmarks/bench_reliability.py [--only PATTERN] [--list-failures] [--markdown FILE]

Each case builds a fresh workspace (a broken clip, model, config ... plus a file outside the output folder that
must not change), calls the tool's ``main(argv)`` in-process and judges the outcome (tests/reliability/harness.py):
handled well, traceback, silent wrong result (exit 0 on a broken input), data lost (anything outside the output
folder touched), half-written output, or "off" (no traceback, but exit status or message not as documented).
Prints the counts per command family and, with --list-failures, every case that was not handled well.

The same table runs against another checkout with PYTHONPATH pointing at it (a "before" figure):
``PYTHONPATH=/path/to/old/checkout .venv/bin/python benchmarks/bench_reliability.py``.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "reliability"), str(REPO / "tests" / "autolabel_pipeline")]
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _tiny_export(folder: Path):
    """The tiny exported model + clip of tests/deploy/conftest.py (loaded under its own name: many conftests)."""
    import importlib.util

    sys.path.insert(0, str(REPO / "tests" / "deploy"))
    spec = importlib.util.spec_from_file_location("deploy_test_fixtures", REPO / "tests" / "deploy" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tiny_export(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="*", help="fnmatch pattern on case names (e.g. 'check:*')")
    parser.add_argument("--list-failures", action="store_true", help="print every case not handled well")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown")
    parser.add_argument(
        "--no-deploy-model", action="store_true", help="skip the deploy run cases (they export a tiny model: torch)"
    )
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per command before it is a hang")
    args = parser.parse_args(argv)

    import harness
    from cases import all_cases
    from harness import VERDICTS, run_case

    harness.TIME_LIMIT_S = args.time_limit
    from workspace import Templates

    work = Path(tempfile.mkdtemp(prefix="fv_reliability_"))
    try:
        templates = Templates.build(work / "templates")
        cases = all_cases()
        if not args.no_deploy_model and fnmatch.fnmatch("deploy-run-clip:", args.only.split(":")[0] + ":"):
            from deploy_cases import run_cases

            model, _, clip = _tiny_export(work / "deploy")
            cases += run_cases(model, clip)
        cases = [case for case in cases if fnmatch.fnmatch(case.name, args.only)]
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        failures = []
        start = time.perf_counter()
        for index, case in enumerate(cases):
            verdict, reason, _ = run_case(case, work / f"case_{index:04d}", templates)
            family = case.name.split(":", 1)[0]
            counts[family][verdict] += 1
            counts["all"][verdict] += 1
            if verdict != "handled":
                failures.append((case.name, verdict, reason))
            shutil.rmtree(work / f"case_{index:04d}", ignore_errors=True)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = "| command | cases | " + " | ".join(VERDICTS) + " |"
    lines = [header, "|" + "---|" * (len(VERDICTS) + 2)]
    for family in sorted(counts, key=lambda f: (f == "all", f)):
        row = counts[family]
        name = f"**{family}**" if family == "all" else family
        lines.append(f"| {name} | {sum(row.values())} | " + " | ".join(str(row[v]) for v in VERDICTS) + " |")
    table = "\n".join(lines)
    print(table)
    print(f"{len(cases)} cases in {seconds:.0f} s")
    if args.list_failures:
        for name, verdict, reason in failures:
            print(f"{verdict:12s} {name}: {reason}")
    if args.markdown is not None:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
