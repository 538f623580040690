"""Tests for mmrft.data.synthetic.multi_image: every answer is re-derived from the rendered pixels alone.

The pixel readers here (exact-RGB masks, connected components by 8-neighbour min-label propagation) share
no code with the task module, so a scene/render/solve disagreement shows up as a failing answer.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from mmrft.data.synthetic import multi_image  # noqa: F401  (registers the tasks)
from mmrft.data.synthetic.base import SyntheticItem, generate_items, get_task, write_dataset
from mmrft.data.sources import load_samples
from mmrft.rewards.choice import choice_reward

TASKS = ("multi_image_more", "multi_image_change")
ALL = [(t, d) for t in TASKS for d in (0, 1, 2)]
N = 40
LETTERS = "ABCD"
CHANGE_OPTIONS = ["a shape was added", "a shape was removed", "a shape changed colour", "a shape moved"]
RGB = {  # the palette as drawn (exact, no anti-aliasing)
    "red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220),
    "yellow": (235, 195, 0), "purple": (140, 40, 170), "orange": (245, 130, 20),
}

_CACHE: dict = {}


def items(task: str, difficulty: int, n: int = N, seed: int = 11, size: int = 112) -> list[SyntheticItem]:
    key = (task, difficulty, n, seed, size)
    if key not in _CACHE:
        _CACHE[key] = generate_items(task, n, seed=seed, difficulty=difficulty, image_size=size)
    return _CACHE[key]


# ------------------------------------------------------------------- pixel readers


def colour_mask(img: Image.Image, colour: str) -> np.ndarray:
    return (np.asarray(img) == np.array(RGB[colour], dtype=np.uint8)).all(-1)


def components(mask: np.ndarray) -> list[tuple[int, tuple[int, int, int, int]]]:
    """8-connected components of ``mask`` as (pixel count, (x1, y1, x2, y2)), sorted.

    Every pixel starts with its own flat index as label; labels repeatedly take the minimum over the 3x3
    neighbourhood and then follow the label they point at (pointer jumping) until nothing changes.
    """
    if not mask.any():
        return []
    ys, xs = np.nonzero(mask)
    y0, x0 = int(ys.min()), int(xs.min())
    sub = mask[y0:ys.max() + 1, x0:xs.max() + 1]
    h, w = sub.shape
    big = h * w
    flat = np.arange(big).reshape(h, w)
    lab = np.where(sub, flat, big)
    while True:
        p = np.pad(lab, 1, constant_values=big)
        nb = np.min([p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
        nb = np.where(sub, nb, big)
        nb[sub] = nb.ravel()[nb[sub]]  # jump: a pixel's label's own label
        if np.array_equal(nb, lab):
            break
        lab = nb
    roots, counts = np.unique(lab[sub], return_counts=True)
    out = []
    for root, n in zip(roots, counts):
        cy, cx = np.nonzero(lab == root)
        out.append((int(n), (int(cx.min()) + x0, int(cy.min()) + y0, int(cx.max()) + x0, int(cy.max()) + y0)))
    return sorted(out)


def shapes(img: Image.Image) -> Counter:
    """Multiset of drawn shapes as (colour, pixel count, bbox); checks nothing else is drawn."""
    arr = np.asarray(img)
    covered = (arr == 255).all(-1)
    found: Counter = Counter()
    for colour in RGB:
        mask = colour_mask(img, colour)
        covered |= mask
        found.update((colour, n, box) for n, box in components(mask))
    assert covered.all(), "pixels outside the palette"
    return found


def option_lines(prompt: str) -> tuple[str, list[str]]:
    """(question line, option texts) of a prompt ``question\\nA. x\\nB. y...``."""
    question, *lines = prompt.split("\n")
    for letter, line in zip(LETTERS, lines):
        assert line.startswith(f"{letter}. "), prompt
    return question, [line[3:] for line in lines]


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ registry / structure


def test_registry():
    for name in TASKS:
        t = get_task(name)
        assert t.name == name and t.reward == "choice" and t.modality == "multi_image"
        assert list(t.difficulties) == [0, 1, 2]
    with pytest.raises(ValueError):
        generate_items("multi_image_more", 1, seed=0, difficulty=3)


@pytest.mark.parametrize("task,difficulty", ALL)
def test_item_structure(task, difficulty):
    n_images = 3 if (task, difficulty) == ("multi_image_more", 2) else 2
    for it in items(task, difficulty):
        assert it.task == task and it.reward == "choice" and it.image is None
        assert len(it.images) == n_images
        assert all(im.mode == "RGB" and im.size == (112, 112) for im in it.images)
        md = it.metadata
        assert md["difficulty"] == difficulty and md["image_size"] == [112, 112]
        assert len(md["scene"]["images"]) == n_images
        json.dumps(md)
        assert get_task(task).solve(json.loads(json.dumps(md["scene"]))) == it.answer
        question, options = option_lines(it.prompt)
        assert options == md["options"]
        letters = LETTERS[: len(options)]
        assert it.answer in letters
        for letter in letters:
            assert re.search(rf"^{letter}\. ", it.prompt, re.M), letter
        assert "first image" in it.prompt and "second image" in it.prompt
        rat = md["rationale"]
        assert 0 < len(rat.split()) <= 8 and it.answer not in re.findall(r"[A-Za-z]+", rat)
        assert "answer" not in it.prompt.lower()
        # the reward accepts the gold letter and rejects the others
        row = {"answer": it.answer, "metadata": md}
        assert choice_reward(it.answer, row) == 1.0
        assert all(choice_reward(x, row) == 0.0 for x in letters if x != it.answer)


def test_render_false_keeps_text():
    for task in TASKS:
        t = get_task(task)
        a = t.generate(random.Random(5), 0, 1)
        b = t.generate(random.Random(5), 0, 1, render=False)
        assert b.images == [] and b.image is None
        assert (a.prompt, a.answer, a.metadata) == (b.prompt, b.answer, b.metadata)


# ------------------------------------------------------------ multi_image_more from pixels


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_more_answer_from_pixels(difficulty):
    answers = Counter()
    for it in items("multi_image_more", difficulty):
        question, options = option_lines(it.prompt)
        m = re.fullmatch(r"Which image has more (\w+) shapes\?", question)
        assert m, question
        colour = m.group(1)
        assert options == ["the first image", "the second image", "the third image"][: len(it.images)]
        counts = [len(components(colour_mask(im, colour))) for im in it.images]
        ordered = sorted(counts)
        assert ordered[-1] > ordered[-2], counts  # no tie for the most
        gap = min(b - a for a, b in zip(ordered, ordered[1:]))
        assert gap >= (2 if difficulty == 0 else 1), counts
        assert min(counts) >= 1
        assert it.answer == LETTERS[counts.index(max(counts))]
        answers[it.answer] += 1
        others = [int((~colour_mask(im, colour) & ~(np.asarray(im) == 255).all(-1)).sum()) for im in it.images]
        if difficulty == 0:
            assert others == [0] * len(it.images)  # nothing but the asked colour
            assert colour in ("red", "green", "blue", "yellow")
            objs = [o for img in it.metadata["scene"]["images"] for o in img]
            assert all(o["kind"] == "circle" and o["size"] == 12 for o in objs)
        else:
            assert all(n > 0 for n in others)  # other-colour distractors in every image
    assert set(answers) == set(LETTERS[: 3 if difficulty == 2 else 2])


# ---------------------------------------------------------- multi_image_change from pixels


def change_from_pixels(first: Image.Image, second: Image.Image, a: Counter | None = None,
                       b: Counter | None = None) -> str:
    """The option text of the one change between two renders, read from pixels only (``a``, ``b``:
    their :func:`shapes`, if already known)."""
    a = shapes(first) if a is None else a
    b = shapes(second) if b is None else b
    if sum(b.values()) == sum(a.values()) + 1:
        assert not (a - b) and sum((b - a).values()) == 1  # exactly one new shape, the rest untouched
        return "a shape was added"
    if sum(b.values()) == sum(a.values()) - 1:
        assert not (b - a) and sum((a - b).values()) == 1
        return "a shape was removed"
    assert sum(a.values()) == sum(b.values())
    gone, new = a - b, b - a
    assert sum(gone.values()) == sum(new.values()) == 1, (gone, new)
    (c0, n0, box0), (c1, n1, box1) = next(iter(gone)), next(iter(new))
    painted_a = ~(np.asarray(first) == 255).all(-1)
    painted_b = ~(np.asarray(second) == 255).all(-1)
    if c0 != c1:  # same silhouette in the same place, another colour
        assert np.array_equal(painted_a, painted_b) and (n0, box0) == (n1, box1)
        return "a shape changed colour"
    # same colour and pixel count, elsewhere, not touching its old place
    assert n0 == n1 and box0 != box1
    assert box1[0] > box0[2] or box0[0] > box1[2] or box1[1] > box0[3] or box0[1] > box1[3]
    return "a shape moved"


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_change_answer_from_pixels(difficulty):
    seen = Counter()
    for it in items("multi_image_change", difficulty):
        question, options = option_lines(it.prompt)
        assert question.startswith("What changed between the two pictures")
        assert options == (CHANGE_OPTIONS[:2] if difficulty == 0 else CHANGE_OPTIONS)
        first, second = it.images
        found = [shapes(first), shapes(second)]
        text = change_from_pixels(first, second, *found)
        assert it.answer == LETTERS[options.index(text)]
        assert it.metadata["change"] in ("added", "removed", "recoloured", "moved")
        seen[text] += 1
        if difficulty == 0:  # large circles only
            objs = [o for img in it.metadata["scene"]["images"] for o in img]
            assert all(o["kind"] == "circle" and o["size"] == 14 for o in objs)
            assert min(n for f in found for _, n, _ in f) > 500  # r=14 circles: ~600 px each
            assert 1 <= min(len(x) for x in it.metadata["scene"]["images"]) <= 3
    assert set(seen) == set(CHANGE_OPTIONS[:2] if difficulty == 0 else CHANGE_OPTIONS)


# -------------------------------------------------------------------- determinism, sizes


def _row(it: SyntheticItem) -> tuple:
    return (it.id, it.prompt, it.answer, json.dumps(it.metadata, sort_keys=True))


@pytest.mark.parametrize("task", TASKS)
def test_determinism(task):
    a = generate_items(task, 4, seed=3, difficulty=1)
    b = generate_items(task, 4, seed=3, difficulty=1)
    assert [_row(x) for x in a] == [_row(x) for x in b]
    assert [[png_bytes(im) for im in x.images] for x in a] == [[png_bytes(im) for im in x.images] for x in b]
    c = generate_items(task, 4, seed=4, difficulty=1)
    assert [json.dumps(x.metadata["scene"]) for x in a] != [json.dumps(x.metadata["scene"]) for x in c]
    longer = generate_items(task, 8, seed=3, difficulty=1)
    assert [_row(x) for x in longer[:4]] == [_row(x) for x in a]


@pytest.mark.parametrize("size", [64, 224])
def test_other_image_sizes(size):
    for it in items("multi_image_more", 2, n=5, size=size):
        assert [im.size for im in it.images] == [(size, size)] * 3
        colour = re.search(r"more (\w+) shapes", it.prompt).group(1)
        counts = [len(components(colour_mask(im, colour))) for im in it.images]
        assert it.answer == LETTERS[counts.index(max(counts))]
    for it in items("multi_image_change", 2, n=5, size=size):
        assert [im.size for im in it.images] == [(size, size)] * 2
        assert it.answer == LETTERS[it.metadata["options"].index(change_from_pixels(*it.images))]


# ------------------------------------------------------------------------- datasets


def test_write_dataset_and_load(tmp_path):
    path = write_dataset("multi_image_more", 4, tmp_path, seed=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    expected = generate_items("multi_image_more", 4, seed=0)
    assert len(rows) == 4
    for row, it in zip(rows, expected):
        assert row["id"] == it.id and row["answer"] == it.answer and row["prompt"] == it.prompt
        assert row["images"] == [f"images/{row['id']}_0.png", f"images/{row['id']}_1.png"]
        for rel, im in zip(row["images"], it.images):
            with Image.open(tmp_path / rel) as saved:
                assert saved.convert("RGB").tobytes() == im.tobytes()
        assert get_task(row["task"]).solve(row["metadata"]["scene"]) == row["answer"]
    samples = load_samples(path)
    assert [s.id for s in samples] == [r["id"] for r in rows]
    assert all(len(s.images) == 2 and s.reward == "choice" for s in samples)
