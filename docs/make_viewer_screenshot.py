"""Regenerate docs/viewer.png: `mmrft view` of a small fake run, screenshotted in headless Chromium.

    python docs/make_viewer_screenshot.py [--out docs/viewer.png] [--keep DIR]

Needs `apt-get install chromium chromium-driver` and `pip install selenium`. The run is made up (no training):
two dumped steps of the synthetic counting task, four groups of four completions each, GRPO advantages, one group
dropped by dynamic sampling (all correct), and a metrics.jsonl with a rising reward curve.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import tempfile
from pathlib import Path

from mmrft.data.synthetic import write_dataset
from mmrft.report.viewer import write_viewer
from mmrft.track.rollouts import write_rollouts


def completion(kind: str, sample: dict, rng: random.Random) -> str:
    things = " ".join(sample["prompt"].split()[2:4])  # "How many red squares are ..." -> "red squares"
    places = sample["metadata"]["rationale"].split(": ", 1)[-1]
    n = int(sample["answer"])
    if kind == "correct":
        return f"<think>I look for {things}: {places}. That makes {n}.</think>\n<answer>{n}</answer>"
    if kind == "off":
        m = max(0, n + rng.choice([-1, 1]))
        return f"<think>I see {things} at {places.split(', ')[0]}, and maybe more.</think>\n<answer>{m}</answer>"
    if kind == "noformat":
        return f"There are {n + 1} {things} in the image."
    rows = " ".join(f"Row {i}: I check each shape from left to right and compare its colour." for i in range(1, 9))
    return f"<think>Let me count carefully, starting from the top left. {rows} Now the"


def rows_for(step: int, samples: list[dict], kinds: list[list[str]], rng: random.Random) -> list[dict]:
    rows = []
    for g, (s, ks) in enumerate(zip(samples, kinds)):
        texts = [completion(k, s, rng) for k in ks]
        acc = [float(k == "correct") for k in ks]
        fmt = [float(k in ("correct", "off")) for k in ks]
        rewards = [a + 0.2 * f for a, f in zip(acc, fmt)]
        mean = sum(rewards) / len(rewards)
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
        kept = std > 0  # dynamic sampling drops groups whose rewards are all equal
        for j, (t, k) in enumerate(zip(texts, ks)):
            extracted = t.split("<answer>")[1].split("</answer>")[0] if "<answer>" in t else None
            rows.append({
                "step": step, "group": g, "index": j, "sample_id": s["id"], "task": "count", "prompt": s["prompt"],
                "images": s["images"], "answer": s["answer"], "completion": t, "extracted": extracted,
                "reward": rewards[j], "components": {"count": acc[j], "format": fmt[j]}, "correct": k == "correct",
                "truncated": k == "trunc", "length": len(t) // 4, "kept": kept,
                "advantage": round((rewards[j] - mean) / (std + 1e-4), 3) if kept else None,
            })
    return rows


def make_run(root: Path) -> Path:
    rng = random.Random(0)
    data = write_dataset("count", 8, root / "data", seed=7, difficulty=1)
    samples = [json.loads(line) for line in data.read_text().splitlines()]
    for s in samples:
        s["images"] = [str(data.parent / p) for p in s["images"]]
    run = root / "run"
    write_rollouts(run, 20, rows_for(20, samples[:4], [["correct", "off", "noformat", "trunc"],
                                                       ["off", "off", "correct", "noformat"],
                                                       ["correct", "correct", "correct", "correct"],
                                                       ["off", "trunc", "off", "correct"]], rng))
    write_rollouts(run, 40, rows_for(40, samples[4:], [["correct", "correct", "off", "correct"],
                                                       ["correct", "correct", "correct", "correct"],
                                                       ["correct", "off", "correct", "trunc"],
                                                       ["correct", "correct", "noformat", "correct"]], rng))
    metrics = []
    for step in range(1, 41):
        acc = min(0.95, 0.25 + 0.015 * step + rng.uniform(-0.08, 0.08))
        metrics.append({"step": step, "phase": "train", "reward/mean": acc + 0.2 * min(1.0, 0.6 + 0.01 * step),
                        "accuracy": acc})
        if step % 10 == 0:
            metrics.append({"step": step, "phase": "eval", "eval/accuracy": 0.2 + 0.012 * step})
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return run


def screenshot(page: Path, out: Path, width: int = 1400, max_height: int = 1700) -> None:
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},1000", "--hide-scrollbars"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        driver.get(page.resolve().as_uri())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(height + 140, max_height))  # outer size: leave room for the chrome
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).with_name("viewer.png")))
    ap.add_argument("--keep", help="build the fake run in this directory and keep it (default: a temporary one)")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmrft-viewer-"))
    try:
        page = write_viewer(make_run(root))
        screenshot(page, Path(args.out))
        print(f"wrote {args.out} (page: {page})")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
