"""The three command lines: ``--version``, a help string for every flag of every verb (the Lightning verbs of
``perception`` excepted: LightningCLI writes theirs), and no reStructuredText markup in what ``--help`` prints."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from autolabel.cli import main as autolabel_main
from deploy.cli import main as deploy_main
from perception import __version__
from perception.cli import main as perception_main

VERBS = [(perception_main, [verb]) for verb in ("synth", "viz", "import", "export", "calibrate", "check")] + [
    (perception_main, ["import", kind]) for kind in ("nuscenes", "video", "rosbag")
]
VERBS += [(perception_main, ["export", kind]) for kind in ("rerun", "foxglove")]
VERBS += [(autolabel_main, [])] + [
    (autolabel_main, [verb]) for verb in ("eval", "review", "calibrate", "export", "import-cvat")
]
VERBS += [(deploy_main, [])] + [(deploy_main, [verb]) for verb in ("export", "parity", "quantize", "bench", "run")]


def _help_of(main, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            main([*argv, "--help"])
        except SystemExit:
            pass
    return out.getvalue()


@pytest.mark.parametrize(("main", "name"), [(perception_main, "perception"), (autolabel_main, "autolabel"),
                                            (deploy_main, "deploy")])  # fmt: skip
def test_version(main, name: str, capsys) -> None:
    try:
        code = main(["--version"])
    except SystemExit as exit_:  # argparse's version action exits
        code = exit_.code
    assert code in (0, None)
    assert capsys.readouterr().out.strip() == f"{name} (fleetvision) {__version__}"


@pytest.mark.parametrize(("main", "argv"), VERBS, ids=[f"{m.__module__.split('.')[0]} {' '.join(a)}" for m, a in VERBS])
def test_every_flag_has_help_and_no_rst(main, argv: list[str], monkeypatch) -> None:
    created: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.__init__

    def record(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(argparse.ArgumentParser, "__init__", record)
    text = _help_of(main, argv)
    assert text.strip(), f"{argv}: --help printed nothing"
    assert "``" not in text and ":class:`" not in text, f"{argv}: reStructuredText markup in --help:\n{text}"
    prog = " ".join([main.__module__.split(".")[0], *argv])
    parsers = [p for p in created if p.prog == prog or (not argv and p.prog == prog.split()[0])]
    assert parsers, f"no parser named {prog!r} was built"
    missing = [
        "/".join(action.option_strings) or action.dest
        for parser in parsers
        for action in parser._actions
        if not isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)) and not action.help
    ]
    assert not missing, f"{prog}: flags without help: {missing}"
