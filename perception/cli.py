"""The ``perception`` command: data tools (synth, viz, import, calibrate, check) and Lightning training.

Each subcommand lives in its own module with a ``main(argv) -> int`` function, imported only when used,
so ``perception --help`` stays fast and torch is loaded only by the training subcommands.
"""

from __future__ import annotations

import importlib
import sys

from perception.errors import cli_boundary

SUBCOMMANDS = {
    "synth": ("perception.sim.cli", "generate synthetic multi-camera drive clips"),
    "viz": ("perception.viz", "render a clip (cameras + boxes + bird's-eye view) to a video or picture"),
    "import": (
        "perception.importers.cli",
        "convert nuScenes (info files or raw tables), plain videos or ROS bags / MCAP to drive clips",
    ),
    "export": ("perception.export.cli", "write a clip with its labels for Rerun (.rrd) or Foxglove (.mcap)"),
    "calibrate": ("perception.importers.calibrate", "calibrate a camera from chessboard images"),
    "check": ("perception.check", "validate drive clips and report what is wrong"),
    "robustness": (
        "perception.training.robustness",
        "NDS / mAP / resilience rate of a checkpoint under the eight RoboBEV corruptions (camera crash, fog, ...)",
    ),
}
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _usage() -> str:
    lines = ["usage: perception COMMAND [ARGS]", "", "data:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    lines += ["", "training (LightningCLI; e.g. perception fit -c configs/perception/bev_tiny.yaml):"]
    lines += [f"  {name}" for name in LIGHTNING_SUBCOMMANDS]
    lines += ["", "Run 'perception COMMAND --help' for a command's options, 'perception --version' for the version;"]
    lines += ["add --debug to see a traceback."]
    lines += ["Exit status: 0 success, 1 the run or a check failed, 2 bad input (file, field, expected, found)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``perception`` console script; returns the exit status (``perception.errors``)."""
    return cli_boundary("perception", _dispatch, argv, subcommands=[*SUBCOMMANDS, *LIGHTNING_SUBCOMMANDS])


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("--version", "-V"):
        from perception import __version__

        print(f"perception (fleetvision) {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command in LIGHTNING_SUBCOMMANDS:
        from perception.training.cli import run_cli

        return run_cli([command, *rest])
    if command not in SUBCOMMANDS:
        print(f"perception: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
