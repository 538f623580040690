"""The package's layers (docs/architecture.md): a lower layer never imports a higher one."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmrft"
# sub-package -> the sub-packages it must not import
FORBIDDEN = {
    "algorithms": {"data", "rewards", "models", "rollout", "train", "eval", "track", "report", "cli", "config",
                   "config_layers", "presets", "demo"},
    "rewards": {"models", "rollout", "train", "eval", "track", "report", "cli", "demo"},
    "data": {"models", "rollout", "train", "eval", "track", "report", "cli", "demo"},
    "tools": {"models", "rollout", "train", "eval", "track", "report", "cli", "demo", "config", "config_layers", "presets"},
    "models": {"rollout", "train", "eval", "track", "report", "cli", "demo"},
    "rollout": {"train", "eval", "track", "report", "cli", "demo"},
    "train": {"report", "cli", "demo"},
    "eval": {"train", "report", "cli", "demo"},
    "track": {"train", "eval", "report", "cli", "demo"},
    "report": {"cli", "demo"},
    "registry": {"*"},  # imports nothing from mmrft
    "faults": {"*"},  # the fault-injection hook: nothing either
    "run_lock": {"algorithms", "data", "rewards", "tools", "models", "rollout", "train", "eval", "track", "report",
                 "cli", "demo", "config", "config_layers", "presets"},  # beside atomic and errors, for every command
}


def imported_subpackages(path: Path) -> set[tuple[int, str]]:
    """(line, first component after `mmrft.`) of every import of the package in `path`, relative ones resolved."""
    module = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if module[-1] == "__init__":
        module = module[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module[: len(module) - node.level + (path.name == "__init__.py")]
                names = [".".join(base + [node.module])] if node.module else [".".join(base + [a.name]) for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "mmrft" and len(parts) > 1:
                found.add((node.lineno, parts[1]))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_a_higher_one(layer):
    files = [PACKAGE / f"{layer}.py"] if (PACKAGE / f"{layer}.py").is_file() else sorted((PACKAGE / layer).rglob("*.py"))
    assert files, layer
    bad = [f"{f.relative_to(PACKAGE.parent)}:{line} imports mmrft.{sub}" for f in files
           for line, sub in sorted(imported_subpackages(f))
           if sub != layer and ("*" in FORBIDDEN[layer] or sub in FORBIDDEN[layer])]
    assert not bad, "\n".join(bad)


def test_the_check_sees_imports():
    """The checker finds absolute and relative imports (it would pass vacuously otherwise)."""
    found = {sub for _, sub in imported_subpackages(PACKAGE / "train" / "rl.py")}
    assert {"config", "train"} <= found
    found = {sub for _, sub in imported_subpackages(PACKAGE / "data" / "synthetic" / "__init__.py")}
    assert "data" in found
