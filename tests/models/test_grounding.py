"""Family box conventions: hand-computed conversions, and the iou reward reading them back to pixels."""

from __future__ import annotations

import pytest
from PIL import Image

from mmrft.data.schema import Sample
from mmrft.models.families import Family, get_family
from mmrft.models.grounding import adapt_boxes, box_to_format, model_image_size
from mmrft.rewards.grounding import iou_reward


class _QwenImageProcessor:  # the attributes model_image_size reads (14 px patches, merge 2, a 200x200 budget)
    patch_size, merge_size = 14, 2
    size = {"shortest_edge": 56 * 56, "longest_edge": 200 * 200}


class _Processor:
    image_processor = _QwenImageProcessor()


def test_box_formats_by_hand():
    box = [20.0, 30.0, 60.0, 90.0]
    assert box_to_format(box, "pixel", (200, 300)) == [20, 30, 60, 90]
    assert box_to_format(box, "norm1000", (200, 300)) == [100, 100, 300, 300]
    assert box_to_format(box, "norm1", (200, 300)) == [0.1, 0.1, 0.3, 0.3]
    assert box_to_format(box, "model_pixel", (200, 300), (400, 600)) == [40, 60, 120, 180]
    with pytest.raises(ValueError, match="resized image size"):
        box_to_format(box, "model_pixel", (200, 300))


def test_model_image_size_follows_qwen_smart_resize():
    # 500x375 is over the 40000-pixel budget: scaled by sqrt(187500 / 40000) and floored to multiples of 28
    assert model_image_size(_Processor(), 500, 375) == (224, 168)

    class Plain:
        image_processor = object()

    assert model_image_size(Plain(), 500, 375) == (500, 375)


def _ground_sample(tmp_path, size=(500, 375)) -> Sample:
    path = tmp_path / "img.png"
    Image.new("RGB", size, "white").save(path)
    return Sample(id="g1", prompt="Where is the red square?", answer=[100, 50, 250, 200], images=[str(path)],
                  task="ground", reward="iou", metadata={"box_format": "pixel"})


@pytest.mark.parametrize("model_type,expected,model_size", [
    ("qwen2_vl", [200, 133, 500, 533], None),  # 0-1000 grid of the 500x375 image
    ("qwen3_vl", [200, 133, 500, 533], None),
    ("qwen2_5_vl", [45, 22, 112, 90], [224, 168]),  # pixels of the resized 224x168 image
])
def test_adapt_boxes_writes_the_family_convention(tmp_path, model_type, expected, model_size):
    sample = _ground_sample(tmp_path)
    family = get_family(model_type)
    (adapted,) = adapt_boxes([sample], family, _Processor())
    assert adapted.answer == expected
    assert adapted.metadata["box_format"] == adapted.metadata["answer_box_format"] == family.box_format
    assert adapted.metadata["image_size"] == [500, 375]
    assert adapted.metadata.get("model_image_size") == model_size
    assert sample.answer == [100, 50, 250, 200]  # the original is not mutated
    # a model answering the gold in its own convention scores 1; the pixel box read as that convention does not
    view = adapted.reward_view()
    assert iou_reward(f"<answer>{expected}</answer>", view) == pytest.approx(1.0, abs=0.02)
    assert iou_reward("<answer>[100, 50, 250, 200]</answer>", view) < 0.5


def test_adapt_boxes_leaves_other_samples_alone(tmp_path):
    sample = _ground_sample(tmp_path)
    other = Sample(id="c1", prompt="How many?", answer="3", task="count", reward="count")
    normalised = Sample(id="n1", prompt="Where?", answer=[1, 2, 3, 4], images=sample.images, reward="iou",
                        metadata={"box_format": "norm1000", "image_size": [500, 375]})
    family = get_family("qwen2_vl")
    assert adapt_boxes([other, normalised], family, _Processor()) == [other, normalised]
    no_convention = Family(model_type="x", box_format=None)
    assert adapt_boxes([sample], no_convention, _Processor()) == [sample]
