"""Tiny random models of more VLM families (mmrft.models.builders): built offline, saved, reloaded with the Auto
classes, chat template -> processor -> forward / generate / backward."""

import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForMultimodalLM, AutoProcessor

import mmrft  # noqa: F401
from mmrft.models.builders import BUILDERS, MEDIA_TOKENS, MODULE_FRAGMENTS
from mmrft.models.families import get_family
from mmrft.models.tiny import make_tiny_model

# the non-Qwen image families (Qwen-VL and Qwen2-Audio have their own checks in test_tiny / test_families)
FAMILIES = ["gemma3", "idefics3", "internvl", "llava_onevision", "mistral3"]
QUESTION = "How many red circles?"
# What each family's processor returns besides input_ids / attention_mask (see the family modules' docstrings).
EXTRA_KEYS = {
    "gemma3": {"pixel_values", "token_type_ids"},
    "idefics3": {"pixel_values", "pixel_attention_mask"},
    "mistral3": {"pixel_values", "image_sizes"},
    "llava_onevision": {"pixel_values", "image_sizes", "batch_num_images"},
    "internvl": {"pixel_values"},
}


def image_token_id(config) -> int:
    return config.image_token_id if getattr(config, "image_token_id", None) is not None else config.image_token_index


def expected_image_tokens(config, n_images: int) -> int:
    """Image placeholder tokens one prompt with `n_images` square images of `image_size` px gets, from the config."""
    v = config.vision_config
    side = v.image_size[0] if isinstance(v.image_size, (list, tuple)) else v.image_size
    patch = v.patch_size[0] if isinstance(v.patch_size, (list, tuple)) else v.patch_size
    patches = side // patch
    kind = config.model_type
    if kind == "gemma3":
        return config.mm_tokens_per_image * n_images
    if kind == "idefics3":
        return (patches // config.scale_factor) ** 2 * n_images
    if kind == "mistral3":
        return (patches // config.spatial_merge_size) ** 2 * n_images
    if kind == "internvl":
        return config.image_seq_length * n_images
    if kind == "llava_onevision":
        base = patches * patches
        # one image: base + AnyRes grid (one 112 px grid point -> same size) + one newline per row; several images:
        # base + one newline each
        return base + base + patches if n_images == 1 else (base + 1) * n_images
    raise AssertionError(kind)


def user_message(n_images: int, text: str = QUESTION):
    return [{"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]}]


def image(color="white"):
    return Image.new("RGB", (112, 112), color)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Models this small spend their time in thread hand-offs, not arithmetic: on a shared 2-core machine each op took
    # ~7 ms with 2 intra-op threads and ~0.2 ms with 1 (forward 1 s -> 35 ms). Restored after this module.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=FAMILIES)
def family(one_thread, request, tmp_path_factory):
    model_type = request.param
    out = make_tiny_model(tmp_path_factory.mktemp(model_type) / "model", arch=model_type, seed=0)
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForMultimodalLM.from_pretrained(out).eval()
    return model_type, out, processor, model


def prompt(processor, n_images=1, text=QUESTION):
    return processor.apply_chat_template(user_message(n_images, text), add_generation_prompt=True, tokenize=False)


def test_saved_checkpoint_loads_with_auto_classes(family):
    model_type, out, processor, model = family
    assert json.loads((out / "config.json").read_text())["model_type"] == model_type
    assert model.config.model_type == model_type
    assert type(processor.image_processor).__name__.endswith("ImageProcessorPil")
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n_params < 10_000_000
    tok = processor.tokenizer
    # generation stops at the end-of-turn token and pads with the pad token
    assert model.generation_config.eos_token_id == tok.eos_token_id == model.config.text_config.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id == model.config.text_config.pad_token_id
    assert tok.padding_side == "left"
    # every media token is one id in the vocabulary, the config's image token among them
    media = [tok.convert_tokens_to_ids(t) for t in MEDIA_TOKENS[model_type]]
    assert all(isinstance(i, int) and 0 <= i < model.config.text_config.vocab_size for i in media)
    assert image_token_id(model.config) in media
    # module-name fragments select non-empty, disjoint parameter sets
    names = [n for n, _ in model.named_parameters()]
    groups = {k: {n for n in names if any(f in n for f in frags)} for k, frags in MODULE_FRAGMENTS[model_type].items()}
    assert all(groups.values()), groups.keys()
    assert not groups["vision_tower"] & groups["language_model"]
    assert not groups["projector"] & groups["language_model"]


def test_chat_template_and_one_image(family):
    model_type, _, processor, model = family
    text = prompt(processor)
    assert QUESTION in text and text.count(processor.image_token) == 1  # one placeholder, expanded by the processor
    tok = processor.tokenizer
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # lossless, special tokens intact
    inputs = processor(text=[text], images=[[image()]], return_tensors="pt")
    assert set(inputs) == {"input_ids", "attention_mask"} | EXTRA_KEYS[model_type]
    ids = inputs["input_ids"][0]
    assert int((ids == image_token_id(model.config)).sum()) == expected_image_tokens(model.config, 1) <= 64
    # the template's fixed text merges into few tokens: the prompt is mostly image tokens and the question
    assert len(ids) - expected_image_tokens(model.config, 1) <= len(processor.tokenizer.tokenize(QUESTION)) + 16
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, len(ids), model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()


def test_left_padded_batch_forward_and_generate(family):
    model_type, _, processor, model = family
    texts = [prompt(processor), prompt(processor, text="Which circle is the largest one of all the circles here?")]
    inputs = processor(text=texts, images=[[image("red")], [image("blue")]], padding=True, return_tensors="pt")
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert ids.shape[0] == 2 and mask[0, 0] == 0 and mask[1, 0] == 1 and mask[:, -1].all()  # left padding
    assert (ids[mask == 0] == processor.tokenizer.pad_token_id).all()
    for row in ids:
        assert int((row == image_token_id(model.config)).sum()) == expected_image_tokens(model.config, 1)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (2, ids.shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(logits[mask.bool()]).all()
    media = [processor.tokenizer.convert_tokens_to_ids(t) for t in MEDIA_TOKENS[model_type]]
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False, suppress_tokens=media)
    assert out.shape[0] == 2 and 1 <= out.shape[1] - ids.shape[1] <= 4
    assert torch.equal(out[:, : ids.shape[1]], ids)
    assert not torch.isin(out[:, ids.shape[1]:], torch.tensor(media)).any()


def test_two_images_in_one_message(family):
    model_type, _, processor, model = family
    text = prompt(processor, n_images=2)
    inputs = processor(text=[text], images=[[image("red"), image("blue")]], return_tensors="pt")
    n = int((inputs["input_ids"][0] == image_token_id(model.config)).sum())
    assert n == expected_image_tokens(model.config, 2)
    if model_type != "llava_onevision":  # LLaVA-OneVision tiles only single-image prompts (see its module)
        assert n == 2 * expected_image_tokens(model.config, 1)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all()


def test_backward_reaches_vision_tower_and_language_model(family):
    model_type, _, processor, model = family
    inputs = processor(text=[prompt(processor)], images=[[image("green")]], return_tensors="pt")
    model.zero_grad(set_to_none=True)
    logits = model(**inputs).logits
    ids = inputs["input_ids"]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    try:
        params = dict(model.named_parameters())
        for part, frags in MODULE_FRAGMENTS[model_type].items():
            grads = [p.grad for n, p in params.items() if any(f in n for f in frags)]
            assert any(g is not None and g.abs().sum() > 0 for g in grads), f"no gradient reaches the {part}"
        # ... down to the first layer of the vision tower (the patch embedding)
        patch = [p for n, p in params.items() if any(f in n for f in MODULE_FRAGMENTS[model_type]["vision_tower"])
                 and "patch" in n and n.endswith("weight")]
        assert patch and all(p.grad is not None and p.grad.abs().sum() > 0 for p in patch)
    finally:
        model.zero_grad(set_to_none=True)


def test_make_tiny_model_lists_every_builder():
    from mmrft.models.tiny import ARCHS, QWEN_ARCHS

    assert set(ARCHS) == set(QWEN_ARCHS) | set(BUILDERS)


@pytest.mark.parametrize("model_type", sorted(BUILDERS))
def test_family_registry_agrees_with_the_builders(model_type):
    """mmrft.models.families (used for every checkpoint of the family) names the same placeholder tokens and
    tower/projector modules as the tiny builder."""
    family = get_family(model_type)
    assert set(MEDIA_TOKENS[model_type]) <= set(family.placeholder_tokens)
    frags = MODULE_FRAGMENTS[model_type]
    for frag in frags["vision_tower"] + frags["projector"]:
        assert any(key in frag or frag in key for key in family.tower_keys), frag
