"""`import perception` and the torch-free core must not pull in torch."""

import subprocess
import sys

CORE = [
    "perception",
    "perception.geometry",
    "perception.rig",
    "perception.labels",
    "perception.video",
    "perception.clip",
    "perception.model_input",
    "perception.corruptions",
    "perception.cli",
    "perception.importers.rosbag",
    "perception.export.cli",
    "perception.export.rerun",
    "perception.export.foxglove",
]


def test_core_imports_without_torch():
    code = "import sys; sys.modules['torch'] = None\n" + "\n".join(f"import {m}" for m in CORE)
    code += "\nassert 'torchvision' not in sys.modules and 'lightning' not in sys.modules"
    # robot-log readers and viewer SDKs (the optional 'robot' extra) load only when an import or export runs
    code += "\nassert not {'rosbags', 'mcap', 'rerun', 'foxglove'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "perception", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("synth", "viz", "import", "calibrate", "fit"):
        assert command in out
