"""The import-linter contracts in pyproject.toml cover the whole perception core (lint-imports checks them)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TORCH_PARTS = {"models", "data", "training", "metrics"}


def test_core_contract_lists_every_core_module():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    core = next(c for c in config["contracts"] if c["name"].startswith("The perception core is torch-free"))
    listed = set(core["source_modules"])
    package = ROOT / "perception"
    expected = {"perception"}
    for path in package.iterdir():
        if path.suffix == ".py" and path.stem != "__init__":
            expected.add(f"perception.{path.stem}")
        elif path.is_dir() and (path / "__init__.py").is_file() and path.name not in TORCH_PARTS:
            expected.add(f"perception.{path.name}.**")
    assert expected <= listed, f"add to the core contract in pyproject.toml: {sorted(expected - listed)}"
    assert set(core["forbidden_modules"]) >= {"torch", "torchvision", "lightning"}
