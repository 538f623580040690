"""Tests for mmrft.data.synthetic: answers agree with scenes, images agree with scenes, determinism."""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from mmrft.data.synthetic import (
    SYNTHETIC_TASKS,
    CountTask,
    SyntheticItem,
    generate_items,
    get_task,
    register_task,
    task_corpus,
    write_dataset,
)

TASKS = ("count", "arithmetic", "compare", "ground")
REWARDS = {"count": "count", "arithmetic": "numeric", "compare": "choice", "ground": "iou"}
N = 50
ROW_KEYS = {"id", "prompt", "images", "answer", "task", "reward", "metadata"}

_CACHE: dict = {}


def items(task: str, difficulty: int, n: int = N, seed: int = 7, size: int = 112) -> list[SyntheticItem]:
    key = (task, difficulty, n, seed, size)
    if key not in _CACHE:
        _CACHE[key] = generate_items(task, n, seed=seed, difficulty=difficulty, image_size=size)
    return _CACHE[key]


ALL = [(t, d) for t in TASKS for d in (0, 1, 2)]


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ registry / API


def test_registry():
    assert set(TASKS) <= set(SYNTHETIC_TASKS)
    for name in TASKS:
        t = get_task(name)
        assert t.name == name
        assert t.reward == REWARDS[name]
        assert list(t.difficulties) == [0, 1, 2]
    with pytest.raises(KeyError, match="count"):
        get_task("nope")
    with pytest.raises(ValueError):
        generate_items("count", 1, seed=0, difficulty=99)


@pytest.mark.parametrize("task,difficulty", ALL)
def test_item_structure(task, difficulty):
    for it in items(task, difficulty):
        assert isinstance(it, SyntheticItem)
        assert it.task == task and it.reward == REWARDS[task]
        assert it.image.mode == "RGB" and it.image.size == (112, 112)
        md = it.metadata
        assert md["difficulty"] == difficulty
        assert md["image_size"] == [112, 112]
        json.dumps(md)  # JSON-serialisable
        # round-trip through JSON must not change the solution
        assert get_task(task).solve(json.loads(json.dumps(md["scene"]))) == it.answer
        rat = md["rationale"]
        if task == "count":
            _check_count_rationale(it)
            continue
        assert 0 < len(rat.split()) <= 8
        ans = it.answer if isinstance(it.answer, str) else None
        if ans is not None:
            assert ans not in re.findall(r"[A-Za-z]+|\d+", rat)
        else:
            assert not re.search(r"\d", rat)
        assert "answer" not in it.prompt.lower()  # no answer-format instruction


def _check_count_rationale(it):
    """The count rationale names each counted object's 3x3 grid cell, in reading order, and nothing else."""
    scene, q = it.metadata["scene"], it.metadata["scene"]["question"]
    head, _, places = it.metadata["rationale"].partition(": ")
    assert head == f"{q['colour']} {q['kind']}s"
    listed = places.split(", ")
    hits = [o for o in scene["objects"] if o["colour"] == q["colour"] and o["kind"] == q["kind"]]
    assert len(listed) == len(hits) == int(it.answer)
    rows, cols = ("top", "middle", "bottom"), ("left", "centre", "right")
    expected = sorted(((o["center"][1] * 3 // 112, o["center"][0]), f"{rows[o['center'][1] * 3 // 112]} "
                       f"{cols[o['center'][0] * 3 // 112]}") for o in hits)
    assert listed == [name for _, name in expected]
    assert not re.search(r"\d", it.metadata["rationale"])


# --------------------------------------------------------- answers from the scene


def _area(kind: str, bbox) -> float:
    w = bbox[2] - bbox[0]
    h = bbox[3] - bbox[1]
    if kind == "circle":
        return math.pi * (w / 2) ** 2
    if kind == "square":
        return float(w * h)
    if kind == "triangle":
        return w * h / 2
    raise AssertionError(kind)


@pytest.mark.parametrize("task,difficulty", ALL)
def test_answer_matches_scene(task, difficulty):
    t = get_task(task)
    for it in items(task, difficulty):
        scene = it.metadata["scene"]
        assert t.solve(scene) == it.answer
        # independent derivation
        if task == "count":
            m = re.match(r"How many (\w+) (\w+)s are in the image\?$", it.prompt)
            assert m, it.prompt
            colour, kind = m.groups()
            expected = str(sum(1 for o in scene["objects"] if o["colour"] == colour and o["kind"] == kind))
        elif task == "arithmetic":
            a, b = (int(x["text"]) for x in scene["texts"])
            if "sum" in it.prompt:
                expected = str(a + b)
            elif "difference" in it.prompt:
                expected = str(abs(a - b))
            else:
                assert "product" in it.prompt
                expected = str(a * b)
        elif task == "compare":
            lines = it.prompt.split("\n")
            assert len(lines) == 3 and lines[1].startswith("A. ") and lines[2].startswith("B. ")
            assert [lines[1][3:], lines[2][3:]] == it.metadata["options"]
            objs = scene["objects"]
            for opt, o in zip(it.metadata["options"], objs):
                assert opt == f"the {o['colour']} {o['kind']}"
            assert objs[0]["colour"] != objs[1]["colour"]
            if "larger" in lines[0]:
                areas = [_area(o["kind"], o["bbox"]) for o in objs]
                assert areas[0] != areas[1]
                expected = "A" if areas[0] > areas[1] else "B"
            else:
                xs = [(o["bbox"][0] + o["bbox"][2]) / 2 for o in objs]
                left = "A" if xs[0] < xs[1] else "B"
                right = "B" if left == "A" else "A"
                expected = left if "left" in lines[0] else right
        else:  # ground
            m = re.match(r"Where is the (\w+) (\w+)\? Give its bounding box\.$", it.prompt)
            assert m, it.prompt
            colour, kind = m.groups()
            targets = [o for o in scene["objects"] if o["colour"] == colour and o["kind"] == kind]
            assert len(targets) == 1
            expected = list(targets[0]["bbox"])
            assert it.metadata["box_format"] == "pixel"
            assert it.metadata["iou_threshold"] == 0.5
        assert it.answer == expected


# ------------------------------------------------------- images agree with scenes


def _rgb(img, x, y):
    return list(img.getpixel((int(x), int(y))))


@pytest.mark.parametrize("task,difficulty", [(t, d) for t in ("count", "compare", "ground") for d in (0, 1, 2)])
def test_shape_pixels_match_scene(task, difficulty):
    for it in items(task, difficulty):
        objs = it.metadata["scene"]["objects"]
        for o in objs:
            cx, cy = o["center"]
            assert _rgb(it.image, cx, cy) == o["rgb"]
            x1, y1, x2, y2 = o["bbox"]
            assert 0 <= x1 < x2 < 112 and 0 <= y1 < y2 < 112
        # background corners of the bbox union are white where nothing is drawn
        arr = np.asarray(it.image)
        drawn = np.zeros(arr.shape[:2], bool)
        for o in objs:
            x1, y1, x2, y2 = o["bbox"]
            drawn[y1 : y2 + 1, x1 : x2 + 1] = True
        assert (arr[~drawn] == 255).all()


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_ground_box_matches_pixels(difficulty):
    for it in items("ground", difficulty):
        x1, y1, x2, y2 = it.answer
        target = [o for o in it.metadata["scene"]["objects"] if o["bbox"] == it.answer][0]
        assert _rgb(it.image, (x1 + x2) // 2, (y1 + y2) // 2) == target["rgb"]
        # the target's colour is unique, so its pixel extent is exactly the answer box
        arr = np.asarray(it.image)
        mask = (arr == np.array(target["rgb"], dtype=arr.dtype)).all(-1)
        ys, xs = np.nonzero(mask)
        assert [xs.min(), ys.min(), xs.max(), ys.max()] == it.answer


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_arithmetic_text_drawn_inside_boxes(difficulty):
    for it in items("arithmetic", difficulty):
        arr = np.asarray(it.image).astype(int)
        dark = arr.sum(-1) < 3 * 128
        covered = np.zeros_like(dark)
        texts = it.metadata["scene"]["texts"]
        assert len(texts) == 2
        assert texts[0]["bbox"][2] <= texts[1]["bbox"][0]  # left number first
        for t in texts:
            x1, y1, x2, y2 = t["bbox"]
            assert 0 <= x1 and 0 <= y1 and x2 <= 112 and y2 <= 112
            assert dark[y1:y2, x1:x2].sum() > 20  # digits are big
            covered[y1:y2, x1:x2] = True
            n = int(t["text"])
            if difficulty == 1:
                assert 10 <= n <= 99
            else:
                assert 0 <= n <= 9
        assert not (arr[~covered] < 250).any()


def test_count_level0_no_overlap_and_single_colour():
    for it in items("count", 0):
        objs = it.metadata["scene"]["objects"]
        colour = it.prompt.split()[2]
        assert all(o["kind"] == "circle" and o["colour"] == colour for o in objs)
        assert colour in ("red", "green", "blue", "yellow")
        assert all(o["radius"] == 10 for o in objs)
        for i in range(len(objs)):
            for j in range(i + 1, len(objs)):
                (ax, ay), (bx, by) = objs[i]["center"], objs[j]["center"]
                assert math.hypot(ax - bx, ay - by) > objs[i]["radius"] + objs[j]["radius"]


def test_count_level0_distribution():
    counts = Counter(it.answer for it in items("count", 0, n=100))
    assert set(counts) == {"1", "2", "3", "4", "5"}


def test_count_higher_levels_ranges():
    lvl1 = items("count", 1)
    assert {int(it.answer) for it in lvl1} <= set(range(1, 8))
    for it in lvl1:
        objs = it.metadata["scene"]["objects"]
        assert len({o["colour"] for o in objs}) == 1
        assert {o["kind"] for o in objs} == {"circle", "square"}
    lvl2 = items("count", 2)
    assert {int(it.answer) for it in lvl2} <= set(range(1, 10))
    assert any(len({o["colour"] for o in it.metadata["scene"]["objects"]}) > 1 for it in lvl2)


def test_compare_difficulty_bands():
    ratios0 = []
    ratios2 = []
    for it in items("compare", 0):
        a, b = (_area(o["kind"], o["bbox"]) for o in it.metadata["scene"]["objects"])
        ratios0.append(max(a, b) / min(a, b))
    for it in items("compare", 2):
        a, b = (_area(o["kind"], o["bbox"]) for o in it.metadata["scene"]["objects"])
        ratios2.append(max(a, b) / min(a, b))
    assert min(ratios0) > max(ratios2)
    assert {it.answer for it in items("compare", 0)} == {"A", "B"}
    assert {it.prompt.split("\n")[0] for it in items("compare", 1)} == {
        "Which shape is further left?",
        "Which shape is further right?",
    }


# -------------------------------------------------------------------- determinism


def _row(it: SyntheticItem):
    return (it.id, it.prompt, json.dumps(it.answer), it.task, it.reward, json.dumps(it.metadata, sort_keys=True))


@pytest.mark.parametrize("task", TASKS)
def test_determinism(task):
    a = generate_items(task, 5, seed=3, difficulty=1)
    b = generate_items(task, 5, seed=3, difficulty=1)
    assert [_row(x) for x in a] == [_row(x) for x in b]
    assert [png_bytes(x.image) for x in a] == [png_bytes(x.image) for x in b]
    c = generate_items(task, 5, seed=4, difficulty=1)
    assert [x.image.tobytes() for x in a] != [x.image.tobytes() for x in c]
    assert [json.dumps(x.metadata["scene"]) for x in a] != [json.dumps(x.metadata["scene"]) for x in c]
    # item i does not depend on n
    longer = generate_items(task, 20, seed=3, difficulty=1)
    assert [_row(x) for x in longer[:5]] == [_row(x) for x in a]
    assert [x.image.tobytes() for x in longer[:5]] == [x.image.tobytes() for x in a]


@pytest.mark.parametrize("size", [64, 224])
def test_other_image_sizes(size):
    for task in TASKS:
        for it in items(task, 2, n=10, size=size):
            assert it.image.size == (size, size)
            assert it.metadata["image_size"] == [size, size]
            assert get_task(task).solve(it.metadata["scene"]) == it.answer
    for it in items("count", 0, n=10, size=size):
        assert all(o["radius"] == round(10 * size / 112) for o in it.metadata["scene"]["objects"])


# -------------------------------------------------------------------- datasets


def test_write_dataset(tmp_path):
    path = write_dataset("count", 6, tmp_path / "ds", seed=1)
    assert path == tmp_path / "ds" / "data.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 6
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    expected = generate_items("count", 6, seed=1)
    for row, it in zip(rows, expected):
        assert set(row) == ROW_KEYS
        assert row["images"] == [f"images/{row['id']}.png"]
        img_path = path.parent / row["images"][0]
        assert img_path.exists()
        with Image.open(img_path) as im:
            assert im.size == (112, 112)
            assert im.convert("RGB").tobytes() == it.image.tobytes()
        assert row["id"] == it.id and row["answer"] == it.answer and row["prompt"] == it.prompt
        assert get_task(row["task"]).solve(row["metadata"]["scene"]) == row["answer"]
    assert len({r["id"] for r in rows}) == 6


def test_write_dataset_mixed(tmp_path):
    path = write_dataset(["count", "compare", "ground"], 7, tmp_path, seed=2, difficulty=1, image_size=64)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["task"] for r in rows] == ["count", "compare", "ground"] * 2 + ["count"]
    assert len({r["id"] for r in rows}) == 7
    for r in rows:
        assert (tmp_path / r["images"][0]).is_file()
        assert r["reward"] == REWARDS[r["task"]]
        assert r["metadata"]["image_size"] == [64, 64]


def test_task_corpus():
    corpus = task_corpus(n_per_task=5, seed=0)
    assert all(isinstance(s, str) and s for s in corpus)
    text = " ".join(corpus)
    for word in ("How", "many", "circles", "sum", "product", "difference", "larger", "left", "right",
                 "Where", "bounding", "box", "top", "centre", "A.", "B."):
        assert word in text, word


def test_tokenizer_corpus_does_not_move_when_a_task_is_added():
    """The tiny models' tokenizers train on a fixed list of tasks: registering a new task (as the next issues will)
    must not change every tiny model and the demo's figures with it."""
    from mmrft.data.synthetic import SYNTHETIC_TASKS, TOKENIZER_TASKS, tokenizer_corpus

    assert set(TOKENIZER_TASKS) <= set(SYNTHETIC_TASKS)
    before = tokenizer_corpus(n_per_task=3)

    @register_task("test_new_task_with_new_words")
    class NewTask(CountTask):
        def prompt(self, scene):
            return "Zyxwvut quokka?"

    try:
        assert "test_new_task_with_new_words" in SYNTHETIC_TASKS
        assert any("Zyxwvut" in t for t in task_corpus(n_per_task=3))  # every registered task ...
        assert tokenizer_corpus(n_per_task=3) == before  # ... but not in the tokenizer's corpus
    finally:
        SYNTHETIC_TASKS.unregister("test_new_task_with_new_words")
