"""The built-in procedural tasks (`mmrft synth`) as a benchmark: prompt as written, scored by each row's reward."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmrft.data.sources import load_samples
from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import Benchmark, Judgement, register_benchmark
from mmrft.rewards.extract import extract_answer
from mmrft.rewards.registry import get_reward


@register_benchmark("synthetic")
class Synthetic(Benchmark):
    title = "mmrft synthetic tasks"
    source = "generated locally: `mmrft synth --task count --n 200 --seed 3 --out DIR`"
    layout = "DIR/data.jsonl (mmrft's row schema) + DIR/images/*.png"
    categories = ("task",)
    deviations = "none: the answers are known by construction and scored with each row's own reward"

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        path = Path(data_dir) / "data.jsonl"
        if not path.is_file():
            raise DataError(f"{data_dir}: expected {path.name} written by `mmrft synth`; found "
                            f"{sorted(p.name for p in Path(data_dir).iterdir()) if Path(data_dir).is_dir() else 'no directory'}")
        samples = load_samples(path, check_images=False)  # images are checked lazily, batch by batch
        for s in samples:
            s.metadata["categories"] = {"task": s.task}
        return samples

    def judge(self, completion: str, sample: Sample) -> Judgement:
        name = sample.reward if isinstance(sample.reward, str) else "exact"
        if isinstance(sample.reward, dict) and sample.reward:
            name = max(sample.reward.items(), key=lambda kv: kv[1])[0]
        try:
            score = float(get_reward(name)(completion, sample.reward_view()))
        except Exception:  # a reward must not raise; if one does, the completion scores 0
            score = 0.0
        return Judgement(extract_answer(completion), score)
