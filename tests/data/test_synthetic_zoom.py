"""The `zoom` task: every answer and region is re-derived from the rendered pixels alone (exact-RGB masks and
connected components, code shared with the multi-image tests, none with the task module)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mmrft.data.synthetic import generate_items, get_task, write_dataset
from mmrft.data.sources import load_samples
from tests.data.test_synthetic_multi_image import RGB, colour_mask, components

N = 30
BLACK, GREY = (0, 0, 0), (150, 150, 150)


def _frame(img, rgb) -> tuple[int, int, int, int] | None:
    """The bounding box (x1, y1, x2, y2), inclusive, of the pixels of exactly `rgb`; None when there are none."""
    mask = (np.asarray(img) == np.array(rgb, dtype=np.uint8)).all(-1)
    if not mask.any():
        return None
    (n, box), = components(mask)  # one frame: one connected outline
    return box


def _within(box, frame) -> bool:
    return frame[0] < box[0] and frame[1] < box[1] and box[2] < frame[2] and box[3] < frame[3]


@pytest.mark.parametrize("difficulty", [0, 1, 2])
def test_answers_and_regions_from_pixels(difficulty):
    items = generate_items("zoom", N, seed=5, difficulty=difficulty)
    assert {im.image.size for im in items} == {(448, 448)}  # the task's own canvas size
    answers = Counter()
    for item in items:
        colour = item.prompt.split()[2]
        assert item.prompt == f"How many {colour} circles are inside the black frame?"
        frame = _frame(item.image, BLACK)
        assert list(frame[:2]) == item.metadata["region"][:2] and \
            [frame[2] + 1, frame[3] + 1] == item.metadata["region"][2:]
        blobs = [box for _, box in components(colour_mask(item.image, colour))]
        inside = [b for b in blobs if _within(b, frame)]
        assert item.answer == str(len(inside)), item.id
        answers[item.answer] += 1
        outside = [b for b in blobs if not _within(b, frame)]
        decoy = _frame(item.image, GREY)
        if difficulty == 0:
            assert not outside and decoy is None
        else:  # same-colour circles outside the frame: the whole image does not give the answer
            assert len(outside) >= 2
        if difficulty == 2 and decoy is not None:
            assert any(_within(b, decoy) for b in outside)
        others = [c for c in ("red", "green", "blue", "yellow") if c != colour]
        if difficulty < 2:
            assert not any(_within(b, frame) for c in others for _, b in components(colour_mask(item.image, c)))
    assert len(answers) >= 4  # the counts vary


def test_locations_follow_the_difficulty():
    d0 = generate_items("zoom", 40, seed=1, difficulty=0)
    assert {i.metadata["location"] for i in d0} == {"the top left corner", "the top right corner",
                                                     "the bottom left corner", "the bottom right corner"}
    centres = {tuple((np.add(i.metadata["region"][:2], i.metadata["region"][2:]) / 2).tolist()) for i in d0}
    assert centres == {(56.0, 56.0), (392.0, 56.0), (56.0, 392.0), (392.0, 392.0)}
    d1 = generate_items("zoom", 120, seed=1, difficulty=1)
    assert len({i.metadata["location"] for i in d1}) == 16
    for i in d1:  # on the 4x4 grid of 112-px cells, named by row and column
        x1, y1 = i.metadata["region"][:2]
        assert x1 % 112 == 0 and y1 % 112 == 0
        assert i.metadata["location"] == f"row {y1 // 112 + 1}, column {x1 // 112 + 1}"
    d2 = generate_items("zoom", 40, seed=1, difficulty=2)
    assert len({tuple(i.metadata["region"]) for i in d2}) == 40  # anywhere


def test_rationales_never_hold_the_count():
    for item in generate_items("zoom", 40, seed=2, difficulty=1):
        first, zoomed = item.metadata["rationale"], item.metadata["zoomed_rationale"]
        assert first == f"the black frame is at {item.metadata['location']}"
        places = zoomed.split(": ", 1)[1].split(", ")
        assert len(places) == int(item.answer)  # one place per counted circle, the number itself not written
        assert not any(ch.isdigit() for ch in zoomed)


def test_details_are_small_at_the_first_view():
    """Shown whole at 112 px the card covers 28 px (one image token of the tiny models) and a circle 2.5 px
    across; zoomed on the card (112 px, returned at 112) a circle is 10 px across."""
    item = generate_items("zoom", 1, seed=0, difficulty=0)[0]
    region = item.metadata["region"]
    assert region[2] - region[0] == 112
    radius = item.metadata["scene"]["objects"][0]["radius"]
    assert radius == 5 and 2 * radius * 112 / 448 == 2.5 and 2 * radius * 112 / 112 == 10


def test_named_cards_circles_read_as_the_count_task_draws_them():
    """zoom_named: a circle 5 px across at the 112-px first view (inside a card of 28 px, one image token), 20 px
    across zoomed on the card (112 px, returned at 112): the size of the `count` task's circles at 112 px."""
    item = generate_items("zoom_named", 1, seed=0, difficulty=0)[0]
    region = item.metadata["region"]
    assert region[2] - region[0] == 112
    radii = {o["radius"] for o in item.metadata["scene"]["objects"]}
    count_item = generate_items("count", 1, seed=0, difficulty=0)[0]
    count_radii = {o["radius"] for o in count_item.metadata["scene"]["objects"]}
    assert radii == {10} == count_radii
    assert item.image.size == (448, 448)  # a circle 20 px across is 5 px across at the 112-px first view


def test_background_tells_where_a_pixel_is():
    """The pale gradient: red falls left to right, green top to bottom; no background pixel has a circle's colour,
    the card's grey or the frame's black."""
    from mmrft.data.synthetic.zoom import gradient_background

    bg = np.asarray(gradient_background(448)).astype(int)
    assert bg[0, 0].tolist() == [255, 255, 240] and bg[-1, -1].tolist() == [185, 185, 240]
    assert (np.diff(bg[0, :, 0]) <= 0).all() and (np.diff(bg[:, 0, 1]) <= 0).all() and (bg[..., 2] == 240).all()
    colours = [(0, 0, 0), (225, 225, 225), (150, 150, 150)] + [RGB[c] for c in ("red", "green", "blue", "yellow")]
    flat = {tuple(p) for p in bg.reshape(-1, 3).tolist()}
    assert not flat & set(colours)


def test_written_dataset_and_difficulty_knob(tmp_path):
    path = write_dataset("zoom", 6, tmp_path / "z", seed=0, difficulty=1)
    samples = load_samples(path)
    assert [s.task for s in samples] == ["zoom"] * 6 and samples[0].reward == "count"
    assert samples[0].metadata["region"] and samples[0].metadata["location"]
    with pytest.raises(ValueError, match="difficulty 3"):
        get_task("zoom").check_difficulty(3)


def _outlined(img, box, width: int = 5) -> bool:
    """Whether `box` (x1, y1, x2, y2; x2, y2 exclusive) is drawn as a black frame `width` px thick around grey."""
    a = np.asarray(img)
    x1, y1, x2, y2 = box
    edges = [a[y1:y1 + width, x1:x2], a[y2 - width:y2, x1:x2], a[y1:y2, x1:x1 + width], a[y1:y2, x2 - width:x2]]
    inner = a[y1 + width:y2 - width, x1 + width:x2 - width].reshape(-1, 3)
    return all((e == 0).all() for e in edges) and (inner == np.array([225, 225, 225])).all(-1).mean() > 0.7


@pytest.mark.parametrize("difficulty", [0, 1])
def test_named_cards_from_pixels(difficulty):
    """zoom_named: four framed cards alike, each holding circles of the asked colour; the answer is the count in the
    card the question names (its cell re-derived from the named place), never the whole image's count."""
    items = generate_items("zoom_named", N, seed=7, difficulty=difficulty)
    differs = 0
    for item in items:
        words = item.prompt.split()
        colour, where = words[2], item.prompt.split(" at ", 1)[1].rstrip("?")
        if difficulty == 0:
            row, col = (1 if "top" in where else 4), (1 if "left" in where else 4)
            assert where in ("the top left corner", "the top right corner", "the bottom left corner",
                             "the bottom right corner")
        else:
            row, col = (int(w.strip(",")) for w in where.split()[1::2])
        box = [112 * (col - 1), 112 * (row - 1), 112 * col, 112 * row]
        assert box == item.metadata["region"], item.id
        cells = [(x, y) for y in range(4) for x in range(4)]
        framed = [c for c in cells if _outlined(item.image, [112 * c[0], 112 * c[1], 112 * c[0] + 112,
                                                             112 * c[1] + 112])]
        assert len(framed) == 4 and (col - 1, row - 1) in framed
        if difficulty == 0:
            assert set(framed) == {(0, 0), (3, 0), (0, 3), (3, 3)}
        blobs = [b for _, b in components(colour_mask(item.image, colour))]
        per_card = {c: sum(_within(b, (112 * c[0], 112 * c[1], 112 * c[0] + 111, 112 * c[1] + 111)) for b in blobs)
                    for c in framed}
        assert sum(per_card.values()) == len(blobs) and min(per_card.values()) >= 1  # every circle is in a card
        assert item.answer == str(per_card[(col - 1, row - 1)]), item.id
        differs += item.answer != str(len(blobs))
        assert item.metadata["rationale"] == f"the frame at {where}"
    assert differs == len(items)  # the whole image's count is never the answer
