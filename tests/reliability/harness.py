"""Run a command of the three tools in-process (``main(argv)``) and judge what it did with a broken input.

A verdict is one of:
- ``handled``: the exit status is one the case allows, the message names the file, no traceback, nothing outside
  ``out/`` touched, no temporary or half-written output left;
- ``traceback``: an exception left ``main`` or a traceback / "internal error" was printed;
- ``hang``: the command did not finish within the harness's time limit (benchmark runs only);
- ``silent``: exit status 0 where the input is broken (a wrong answer presented as a result);
- ``lost``: a file outside ``out/`` was created, changed or removed;
- ``half-written``: a temporary file or a partial output was left behind after a failure;
- ``off``: no traceback, but the exit status or the message is not as documented (counted apart);
- ``n/a``: the case could not be set up (a scenario's earlier command failed), so it was not judged.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import io
import os
import signal
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workspace import Templates, Workspace

TOOLS = {"perception": "perception.cli", "autolabel": "autolabel.cli", "deploy": "deploy.cli"}
VERDICTS = ("handled", "off", "traceback", "hang", "silent", "lost", "half-written", "n/a")
TEMPORARY_MARKERS = (".tmp", ".partial-", ".old-", ".staging")


@dataclass
class Outcome:
    """What one command did: exit status (None when an exception escaped), its text, and the file-system changes."""

    code: int | None
    output: str
    escaped: str | None = None
    touched: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[int, str]]:
    """(size, sha256) of every file under ``root`` except under ``skip``; symbolic links by their target."""
    state = {}
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        if here == skip or skip in here.parents:
            subfolders[:] = []
            continue
        for name in files:
            path = here / name
            try:
                if path.is_symlink():
                    state[str(path.relative_to(root))] = (-1, os.readlink(path))
                else:
                    state[str(path.relative_to(root))] = (
                        path.stat().st_size,
                        hashlib.sha256(path.read_bytes()).hexdigest(),
                    )
            except OSError:
                state[str(path.relative_to(root))] = (-2, "unreadable")
        for name in subfolders:
            state[str((here / name).relative_to(root)) + "/"] = (0, "folder")
    return state


def _temporaries(root: Path) -> list[str]:
    """Hidden temporary files and folders (atomic writers' staging names) left anywhere under ``root``."""
    found = []
    for folder, subfolders, files in os.walk(root):
        for name in [*files, *subfolders]:
            if name.startswith(".") and any(marker in name for marker in TEMPORARY_MARKERS):
                found.append(str((Path(folder) / name).relative_to(root)))
    return found


class CaseTimeout(BaseException):
    """Raised in the main thread when a command runs past the harness's time limit."""


TIME_LIMIT_S: float | None = None  # set by the benchmark: a case running longer is a hang


def _alarm(signum: int, frame: object) -> None:
    raise CaseTimeout()


def run_tool(tool: str, argv: Sequence[str], workspace: Workspace | None = None) -> Outcome:
    """``main(argv)`` of ``tool`` with stdout and stderr captured; file changes outside ``workspace.out`` recorded."""
    main = importlib.import_module(TOOLS[tool]).main
    before = _snapshot(workspace.root, workspace.out) if workspace is not None else {}
    stdout, stderr = io.StringIO(), io.StringIO()
    code, escaped = None, None
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = signal.signal(signal.SIGALRM, _alarm) if TIME_LIMIT_S else None
        if TIME_LIMIT_S:
            signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
        try:
            code = main(list(argv))
        except CaseTimeout:
            escaped = f"hang: still running after {TIME_LIMIT_S:g} s"
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException as error:
            escaped = f"{type(error).__name__}: {error}"
        finally:
            if TIME_LIMIT_S:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
    gc.collect()  # PendingFile finalizers run: what remains is really left behind
    outcome = Outcome(code, stdout.getvalue() + stderr.getvalue(), escaped)
    if workspace is not None:
        after = _snapshot(workspace.root, workspace.out)
        outcome.touched = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
        outcome.leftovers = _temporaries(workspace.root)
    return outcome


@dataclass
class Case:
    """A broken input and the command that reads it.

    ``build(workspace)`` writes the inputs (and may run commands first: a finished labelling to resume) and
    returns the argv of the judged run; ``codes are the exit statuses the documentation
    allows for it; ``names`` must appear in the output (the file, field or value the problem is about);
    ``clean_out`` asks that a failed run leaves ``out/`` as it found it (no half-written output)."""

    name: str
    tool: str
    build: Callable[[Workspace], list[str]]
    codes: tuple[int, ...]
    names: tuple[str, ...] = ()
    clean_out: bool = True
    check: Callable[[Workspace, Outcome], str | None] | None = None  # extra judgement: None = fine, else why not
    context: Callable[[Workspace], Any] | None = None  # a context manager held around the judged run (a lock ...)


def judge(case: Case, workspace: Workspace, outcome: Outcome) -> tuple[str, str]:
    """(verdict, reason) of one outcome, in order of severity."""
    if outcome.touched:
        return "lost", f"touched outside out/: {outcome.touched[:5]}"
    text = outcome.output
    if outcome.escaped is not None:
        return "hang" if outcome.escaped.startswith("hang:") else "traceback", outcome.escaped
    if "Traceback (most recent call last)" in text or "internal error" in text:
        return "traceback", text.strip().splitlines()[-1][:300] if text.strip() else ""
    if outcome.code == 0 and 0 not in case.codes:
        return "silent", f"exit 0, expected {case.codes}: {text.strip()[-300:]}"
    if outcome.leftovers:
        return "half-written", f"temporary files left: {outcome.leftovers[:5]}"
    if outcome.code != 0 and case.clean_out and any(workspace.out.iterdir()):
        return "half-written", f"failed run left output: {sorted(p.name for p in workspace.out.iterdir())[:5]}"
    if outcome.code in (0, 3):
        private = [p.name for p in workspace.out.rglob("*") if p.is_file() and not p.stat().st_mode & 0o044]
        if private:
            return "off", f"outputs readable by their owner only (mode 0600): {private[:5]}"
    if case.check is not None:
        problem = case.check(workspace, outcome)
        if problem:
            return "silent" if outcome.code == 0 else "off", problem
    if outcome.code not in case.codes:
        return "off", f"exit {outcome.code}, expected {case.codes}: {text.strip()[-300:]}"
    missing = [name for name in case.names if name not in text]
    if missing and outcome.code != 0:
        return "off", f"message does not name {missing}: {text.strip()[-300:]}"
    return "handled", ""


def run_case(case: Case, root: Path, templates: Templates) -> tuple[str, str, Outcome]:
    """Build the case in a fresh workspace under ``root``, run it, judge it."""
    workspace = Workspace(root, templates)
    try:
        argv = case.build(workspace)
    except Exception as error:  # the setup itself failed (e.g. an earlier command of a scenario)
        return "n/a", f"setup failed: {type(error).__name__}: {error}", Outcome(None, "")
    with case.context(workspace) if case.context is not None else contextlib.nullcontext():
        outcome = run_tool(case.tool, argv, workspace)
    verdict, reason = judge(case, workspace, outcome)
    return verdict, reason, outcome
