"""Tool-use SFT trajectories written from a sample's region: the box in the family's convention, the crop the real
`zoom_in` returns, the tool turn ToolEnvironment writes at RL time."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mmrft.data.sources import load_samples
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.models.load import load_processor
from mmrft.models.tiny import make_tiny_model
from mmrft.rollout.tool_trajectories import tool_context, write_zoom_trajectories
from mmrft.tools import parse_tool_calls


@pytest.mark.parametrize("arch,box_format", [("qwen2_vl", "norm1000"), ("qwen2_5_vl", "model_pixel")])
def test_zoom_trajectories_look_at_the_region(tmp_path, arch, box_format):
    model = make_tiny_model(tmp_path / arch, arch=arch, corpus=tokenizer_corpus(5), seed=0)
    proc = load_processor(str(model))
    data = write_dataset("zoom", 4, tmp_path / "zoom", seed=0, difficulty=1)
    path = write_zoom_trajectories(data, tmp_path / "sft", proc, box_format)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    samples = load_samples(path)  # the schema accepts them
    assert len(samples) == 4
    for row, s in zip(rows, samples):
        first, tool, last = row["trajectory"]
        (call,) = parse_tool_calls(first["content"])
        region = row["metadata"]["region"]
        x1, y1, x2, y2 = call.arguments["bbox_2d"]
        if box_format == "norm1000":  # 448-px canvas: pixel = box * 448 / 1000
            assert [round(v * 448 / 1000) for v in (x1, y1, x2, y2)] == pytest.approx(region, abs=1)
        else:  # pixels of the 112-px image the model sees: a quarter of the canvas's
            assert [v * 4 for v in (x1, y1, x2, y2)] == pytest.approx(region, abs=4)
        assert first["content"].startswith(f"<think>{row['metadata']['rationale']}</think><tool_call>")
        assert "Zoomed in on image 0 at [" in tool["content"] and tool["content"].startswith("<tool_response>")
        crop = Image.open(tmp_path / "sft" / tool["images"][0])
        # the tiny processor's budget of 112 x 112 pixels (the box rounded to the 0-1000 grid and back can make
        # the crop a pixel narrower than the square region)
        assert all(abs(v - 112) <= 2 for v in crop.size), crop.size
        assert last["content"] == f"<think>{row['metadata']['zoomed_rationale']}</think><answer>{s.answer}</answer>"
        # the crop is the framed region: its border is the black frame
        rgb = crop.convert("RGB")
        darkest = min(max(rgb.getpixel((x, 56))) for x in range(10))
        assert darkest < 60, darkest


def test_rows_without_a_region_are_refused(tmp_path, tiny_model_dir):
    data = write_dataset("count", 2, tmp_path / "count", seed=0)
    with pytest.raises(ValueError, match="metadata.region must be a box"):
        write_zoom_trajectories(data, tmp_path / "sft", load_processor(str(tiny_model_dir)), "norm1000")


def test_tool_context_measures_images_as_the_model_sees_them(tiny_model_dir):
    proc = load_processor(str(tiny_model_dir))
    ctx = tool_context(proc, "norm1000", [Image.new("RGB", (448, 448))])
    assert (ctx.box_format, ctx.model_sizes, ctx.max_pixels, ctx.min_pixels) == \
        ("norm1000", [(112, 112)], 112 * 112, 112 * 112)
    assert tool_context(proc, None, []).box_format == "pixel"


def test_first_view_cap_moves_the_models_pixel_boxes(tmp_path):
    """data.max_pixels shows the prompt images downsized: the model's own pixel boxes (Qwen2.5-VL) refer to the
    size it was shown, while the tools crop the original."""
    from types import SimpleNamespace

    from mmrft.data.collate import MediaOptions, load_media
    from mmrft.data.schema import Sample

    proc = SimpleNamespace(image_processor=SimpleNamespace(
        patch_size=14, merge_size=2, size={"shortest_edge": 56 * 56, "longest_edge": 10_000_000}))
    big = Image.new("RGB", (2000, 1000))
    assert tool_context(proc, "model_pixel", [big]).model_sizes == [(1988, 1008)]
    capped = tool_context(proc, "model_pixel", [big], first_view_max_pixels=500 * 250)
    assert capped.model_sizes == [(504, 252)] and capped.images[0].size == (2000, 1000)
    path = tmp_path / "big.png"
    big.save(path)
    images, _, _ = load_media(proc, [Sample(id="a", prompt="p", images=[str(path)], answer="1")],
                              MediaOptions(max_pixels=500 * 250))
    assert images[0][0].size == (500, 250)
