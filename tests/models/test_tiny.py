import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

import mmrft  # noqa: F401  (registers the image-only processors)
from mmrft.data.prompts import build_messages
from mmrft.models.processors import Qwen2VLImageOnlyProcessor
from mmrft.models.tiny import make_tiny_model


def test_auto_classes_load_the_tiny_model(tiny_model_dir):
    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert isinstance(proc, Qwen2VLImageOnlyProcessor)
    assert type(proc.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    assert model.config.model_type == "qwen2_vl"
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n < 5_000_000
    assert (tiny_model_dir / "model.safetensors").is_file()


def test_chat_with_image_round_trip(tiny_model_dir):
    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    question = "How many red circles are in the image?"
    msgs = build_messages(question, num_images=1)
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert "<|vision_start|><|image_pad|><|vision_end|>" + question in text
    assert text.endswith("<|im_start|>assistant\n")
    inputs = proc(text=[text], images=[Image.new("RGB", (112, 112), "white")], return_tensors="pt")
    ids = inputs["input_ids"][0]
    # 112x112 -> 8x8 patches of 14 px -> 2x2 merge -> 16 image tokens, expanded from the one placeholder
    assert int((ids == proc.image_token_id).sum()) == 16
    assert inputs["image_grid_thw"].tolist() == [[1, 8, 8]]
    assert inputs["pixel_values"].shape == (64, 3 * 2 * 14 * 14)
    # decoding gives back the text with the placeholder expanded, losslessly
    decoded = proc.tokenizer.decode(ids)
    assert decoded == text.replace("<|image_pad|>", "<|image_pad|>" * 16)
    # reasoning tags are single tokens; digits are split one per token like Qwen2
    tok = proc.tokenizer
    assert tok.tokenize("<think>count</think><answer>12</answer>")[0] == "<think>"
    assert tok.tokenize("12") == ["1", "2"]


def test_generate_and_suppress_media_tokens(tiny_model_dir):
    from mmrft.models.load import media_token_ids

    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    ids = media_token_ids(proc)
    assert proc.image_token_id in ids and len(ids) >= 4
    text = proc.apply_chat_template(build_messages("How many?", 1), add_generation_prompt=True, tokenize=False)
    inputs = proc(text=[text], images=[Image.new("RGB", (112, 112), "red")], return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=20, do_sample=True, suppress_tokens=ids, num_return_sequences=4)
    new = out[:, inputs["input_ids"].shape[1]:]
    assert not torch.isin(new, torch.tensor(ids)).any()


def test_qwen2_5_vl_arch_and_stock_processor_untouched(tmp_path):
    out = make_tiny_model(tmp_path / "q25", arch="qwen2_5_vl")
    assert json.loads((out / "config.json").read_text())["model_type"] == "qwen2_5_vl"
    proc = AutoProcessor.from_pretrained(out)
    assert type(proc).__name__ == "Qwen2_5_VLImageOnlyProcessor"
    # A real checkpoint's files name the stock class; registration must not remap it.
    from transformers.models.auto.processing_auto import processor_class_from_name

    assert processor_class_from_name("Qwen2VLProcessor").__module__.startswith("transformers.")
    assert processor_class_from_name("Qwen2VLImageOnlyProcessor") is Qwen2VLImageOnlyProcessor


def test_refuses_to_overwrite(tmp_path, tiny_model_dir):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        make_tiny_model(tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "user data"


def test_stock_qwen_processor_without_torchvision_falls_back(tiny_model_dir, tmp_path, caplog):
    """A real Qwen2-VL checkpoint names the stock `Qwen2VLProcessor`, whose video processor needs torchvision: on a
    machine without it, load_processor builds the torchvision-free one from the same files (video included)."""
    import json
    import shutil

    from transformers.utils import is_torchvision_available

    from mmrft.models.load import load_processor

    if is_torchvision_available():
        pytest.skip("torchvision is installed: the stock processor loads")
    ckpt = tmp_path / "real-like"
    shutil.copytree(tiny_model_dir, ckpt)
    cfg = json.loads((ckpt / "processor_config.json").read_text())
    cfg["processor_class"] = "Qwen2VLProcessor"
    (ckpt / "processor_config.json").write_text(json.dumps(cfg))
    with caplog.at_level("WARNING", logger="mmrft.models"):
        proc = load_processor(str(ckpt))
    assert "needs torchvision" in caplog.text
    assert type(proc).__name__ == "Qwen2VLImageOnlyProcessor" and proc.tokenizer.padding_side == "left"
    frames = [Image.new("RGB", (112, 112), (200, 30, 30))] * 4
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "?"}]}],
                                    add_generation_prompt=True, tokenize=False)
    out = proc(text=[text], videos=[frames], video_metadata=[{"fps": 1.0}], return_tensors="pt")
    assert out["video_grid_thw"].tolist() == [[2, 8, 8]]
    assert int((out["input_ids"] == proc.video_token_id).sum()) == 2 * 8 * 8 // 4
