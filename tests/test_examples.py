"""Every config in examples/ loads and type-checks (paths are not opened: they name data the user makes first)."""

from pathlib import Path

import pytest

from mmrft.config import load_config
from mmrft.presets import preset_names

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_loads(path):
    cfg = load_config(path)
    assert cfg.algorithm.name in preset_names()
    assert cfg.model.path and cfg.trainer.output_dir
