"""Host memory of a lazily opened dataset does not grow with its row count (each size in a fresh process)."""

import json
import subprocess
import sys

import pytest
from PIL import Image

_CHILD = r"""
import json, random, resource, sys
from mmrft.data.sources import load_samples, open_samples
path, cache, mode = sys.argv[1:4]
if mode == "lazy":
    samples = open_samples(path, cache_dir=cache)
    ids = [samples[random.Random(0).randrange(len(samples))].id for _ in range(1000)]  # draws across the file
else:
    samples = load_samples(path)
print(json.dumps({"n": len(samples), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _write(path, n):
    line = {"prompt": "How many red circles are in the image?", "images": ["img.png"], "answer": "3",
            "task": "count", "reward": "count", "metadata": {"difficulty": 0, "rationale": "top left, centre"}}
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"count-{i:07d}", **line}) + "\n")
    return path


def _peak(path, cache, mode):
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(cache), mode], check=True,
                         capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    return json.loads(out.stdout)


@pytest.mark.slow
def test_lazy_loading_memory_does_not_grow_with_rows(tmp_path):
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "img.png")
    small, large = _write(tmp_path / "small.jsonl", 10_000), _write(tmp_path / "large.jsonl", 200_000)
    lazy_small = _peak(small, tmp_path / "cache", "lazy")
    lazy_large = _peak(large, tmp_path / "cache", "lazy")
    assert (lazy_small["n"], lazy_large["n"]) == (10_000, 200_000)
    growth = lazy_large["peak_mb"] - lazy_small["peak_mb"]
    # 190,000 more rows cost the check's id hashes (16 bytes a row, measured ~12 MB in all); a list costs ~1 KB a row
    assert growth < 24, (lazy_small, lazy_large)
    eager_large = _peak(large, tmp_path / "cache", "eager")  # the measurement can tell: a list grows
    assert eager_large["n"] == 200_000 and eager_large["peak_mb"] - lazy_large["peak_mb"] > 100, eager_large
