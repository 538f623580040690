"""Judges that run a model in process, on tiny models built here (random weights, no downloads, no mocks).

A random model replies garbage, so the generative judge is tested for what it must do with any model: one result
per request, unreadable replies as errors naming the parser, the prompt the model really receives (hooked at its
forward), and verdicts that are checkable: (a) generation restricted to the tokens "yes" and "no", where the
verdict must be the one a plain forward pass prefers, and (b) a parser registered here that maps any reply to a
known function of it. The reward models are compared with a direct forward pass on hand-built inputs.
"""

from __future__ import annotations

import math

import pytest
import torch

from mmrft.judges import JUDGE_KINDS, JudgeUnavailable
from mmrft.judges.prompts import build_messages
from tests.judges.conftest import SHORT_TEMPLATE, make_requests, splitting_bias, yes_no_tokens

IMAGE_PAD = "<|image_pad|>"


def char_code_verdict(reply_text: str, modulo: int = 7) -> float:
    """A parser that reads any reply: (sum of its character codes mod `modulo`) / (modulo - 1)."""
    return (sum(map(ord, reply_text)) % modulo) / (modulo - 1)


@pytest.fixture(scope="module")
def judge(judge_model_dir):
    j = JUDGE_KINDS["local"](name="loc", path=str(judge_model_dir), template=SHORT_TEMPLATE, batch_size=3,
                             max_new_tokens=6)
    yield j
    j.close()


@pytest.fixture(scope="module")
def mixed_requests(image_files):
    reqs = make_requests(7)
    reqs[1] = make_requests(2, images=(image_files[0],))[1]
    reqs[4] = make_requests(5, images=tuple(image_files))[4]
    reqs[5] = make_requests(6, gold=None)[5]  # the template needs a gold answer: a prompt error
    return reqs


def test_one_result_per_request_and_garbage_is_an_error(judge, mixed_requests):
    results = judge.score(mixed_requests)
    assert len(results) == len(mixed_requests)
    assert results[5].score is None and results[5].attempts == 0
    assert results[5].error.startswith("prompt:") and "'s5' has no gold" in results[5].error
    for i, res in enumerate(results):
        if i == 5:
            continue
        assert res.latency_s > 0 and res.attempts == 1
        if res.ok:  # a random model may happen to say yes or no
            assert res.score in (0.0, 1.0)
        else:
            assert res.error.startswith("verdict: parser 'yes_no' could not read the reply") and repr(res.raw) in res.error
    assert judge.score([]) == []


def test_the_model_receives_question_completion_and_image_tokens(judge, mixed_requests):
    seen = []

    def hook(module, args, kwargs):
        if kwargs.get("input_ids") is not None and not seen:  # the prefill: the whole prompt
            seen.append(kwargs)

    batch = mixed_requests[:3]  # no image, one image, no image
    handle = judge.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        judge.score(batch)
    finally:
        handle.remove()
    ids = seen[0]["input_ids"]
    tok = judge.processor.tokenizer
    assert ids.shape[0] == 3
    pad = tok.pad_token_id
    for row, request in zip(ids.tolist(), batch):
        text = tok.decode([t for t in row if t != pad])
        assert f"Question: {request.question}" in text and f"Response: {request.completion}" in text
        assert text.endswith("<|im_start|>assistant\n")
        assert row[0] == pad or len(row) == max(len(r) for r in ids.tolist())  # left padding
    image_tokens = (ids == tok.convert_tokens_to_ids(IMAGE_PAD)).sum(-1).tolist()
    from PIL import Image

    grid = judge.processor.image_processor(images=[Image.open(batch[1].images[0]).convert("RGB")])["image_grid_thw"]
    assert image_tokens == [0, int(grid.prod(-1).sum()) // 4, 0] and image_tokens[1] > 0
    # the image itself reached the model: transformers encodes it before the prefill and passes the features
    assert seen[0].get("mm_encoder_outputs") is not None or seen[0].get("pixel_values") is not None


def test_verdict_restricted_to_yes_no_matches_a_forward_pass(judge_model_dir, judge, mixed_requests):
    """Generation may only write "yes" or "no" (every other token suppressed), with "no" raised by a bias b: the
    judge's verdict must be yes exactly where a plain forward pass gives logit(yes) - logit(no) > b; b splits the
    requests, so the verdicts differ between requests."""
    tok = judge.processor.tokenizer
    yes, no = yes_no_tokens(tok)
    requests = [r for i, r in enumerate(mixed_requests) if i != 5]
    margins = []
    with torch.no_grad():
        for request in requests:  # one at a time, no padding: the plain forward pass
            inputs = judge.prompt_inputs([build_messages(request, SHORT_TEMPLATE)])
            logits = judge.model(**inputs).logits[0, -1]
            margins.append(float(logits[yes] - logits[no]))
    bias = splitting_bias(margins)
    expected = [1.0 if m > bias else 0.0 for m in margins]
    assert 0.0 in expected and 1.0 in expected
    others = [i for i in range(len(tok)) if i not in (yes, no)]
    forced = JUDGE_KINDS["local"](name="forced", path=str(judge_model_dir), template=SHORT_TEMPLATE, batch_size=4,
                                  max_new_tokens=1,
                                  generation_kwargs={"suppress_tokens": others, "sequence_bias": [[[no], bias]]})
    try:
        results = forced.score(requests)
        assert all(r.ok and r.raw.strip().lower() in ("yes", "no") for r in results), results
        assert [r.score for r in results] == expected
    finally:
        forced.close()


def test_user_parser_gets_the_reply(judge_model_dir, mixed_requests):
    j = JUDGE_KINDS["local"](name="codes", path=str(judge_model_dir), template=SHORT_TEMPLATE, batch_size=2,
                             max_new_tokens=4, verdict="tests.judges.test_local_judges:char_code_verdict",
                             verdict_options={"modulo": 5})
    try:
        requests = mixed_requests[:5]
        results = j.score(requests)
        assert [r.score for r in results] == [char_code_verdict(r.raw, 5) for r in results]
        assert all(r.ok for r in results)
        alone = [j.score([r])[0].raw for r in requests[:3]]
        assert alone == [r.raw for r in results[:3]]  # batched replies equal unbatched ones
    finally:
        j.close()
    with pytest.raises(RuntimeError, match="closed"):
        j.score(requests)


def test_local_options_and_unavailable(tmp_path, judge_model_dir):
    with pytest.raises(TypeError, match=r"judge 'x' \(kind local\): unknown option\(s\) batchsize; accepted options: "
                                        r"batch_size, device"):
        JUDGE_KINDS["local"](name="x", path=str(judge_model_dir), batchsize=2)
    with pytest.raises(ValueError, match="option path is required"):
        JUDGE_KINDS["local"](name="x")
    with pytest.raises(ValueError, match="option dtype"):
        JUDGE_KINDS["local"](name="x", path=str(judge_model_dir), dtype="fp8")
    with pytest.raises(JudgeUnavailable, match=f"judge 'x' \\(kind local\\): cannot load the model at {tmp_path}"):
        JUDGE_KINDS["local"](name="x", path=str(tmp_path))
    with pytest.raises(TypeError, match="'yes_no' does not take option"):
        JUDGE_KINDS["local"](name="x", path=str(judge_model_dir), verdict_options={"low": 1})


# -- reward models ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_rm_dir(tmp_path_factory):
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    from mmrft.models.tiny import train_tokenizer

    tok = train_tokenizer(["How many red circles are in the image?", "<think>I count</think><answer>3</answer>"] * 20)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1, pad_token_id=tok.pad_token_id,
                         max_position_embeddings=512)
    model = Qwen2ForSequenceClassification(config).eval()
    out = tmp_path_factory.mktemp("rm")
    with_template, plain = out / "chat", out / "plain"
    model.save_pretrained(with_template)
    tok.save_pretrained(with_template)
    model.save_pretrained(plain)
    tok.chat_template = None
    tok.save_pretrained(plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    return {"chat": with_template, "plain": plain, "model": model}


def direct_scores(model, tok, texts, add_special_tokens=False):
    out = []
    with torch.no_grad():
        for text in texts:
            ids = tok(text, return_tensors="pt", add_special_tokens=add_special_tokens)
            out.append(float(model(**ids).logits[0, 0]))
    return out


def test_reward_model_equals_a_direct_forward(text_rm_dir):
    from transformers import AutoTokenizer

    requests = make_requests(5)
    requests[2] = make_requests(3, completion="a much longer completion " * 6)[2]
    batched = JUDGE_KINDS["reward_model"](name="rm", path=str(text_rm_dir["chat"]), batch_size=3)
    single = JUDGE_KINDS["reward_model"](name="rm1", path=str(text_rm_dir["chat"]), batch_size=1)
    tok = AutoTokenizer.from_pretrained(str(text_rm_dir["chat"]))
    texts = [f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{r.question}<|im_end|>\n"
             f"<|im_start|>assistant\n{r.completion}<|im_end|>\n" for r in requests]  # the chat template, by hand
    assert [batched.text(r) for r in requests] == texts
    expected = direct_scores(text_rm_dir["model"], tok, texts)
    got = batched.score(requests)
    assert all(r.ok for r in got)
    assert [r.score for r in got] == pytest.approx(expected, abs=1e-5)
    assert [r.score for r in single.score(requests)] == pytest.approx([r.score for r in got], abs=1e-5)
    assert len(set(round(x, 6) for x in expected)) > 1  # the inputs really differ
    batched.close()
    single.close()


def test_reward_model_without_chat_template(text_rm_dir):
    from transformers import AutoTokenizer

    judge = JUDGE_KINDS["reward_model"](name="rm", path=str(text_rm_dir["plain"]), batch_size=4)
    tok = AutoTokenizer.from_pretrained(str(text_rm_dir["plain"]))
    assert not tok.chat_template
    requests = make_requests(3)
    texts = [f"{r.question}\n\n{r.completion}" for r in requests]
    assert [judge.text(r) for r in requests] == texts
    expected = direct_scores(text_rm_dir["model"], tok, texts, add_special_tokens=True)
    assert [r.score for r in judge.score(requests)] == pytest.approx(expected, abs=1e-5)
    judge.close()


def test_reward_model_running_normalisation(text_rm_dir):
    requests = make_requests(6)
    raw = JUDGE_KINDS["reward_model"](name="raw", path=str(text_rm_dir["chat"]), batch_size=4)
    xs = [r.score for r in raw.score(requests)]
    judge = JUDGE_KINDS["reward_model"](name="norm", path=str(text_rm_dir["chat"]), batch_size=4,
                                        normalize="running", eps=1e-3)
    got = [r.score for r in judge.score(requests[:4])] + [r.score for r in judge.score(requests[4:])]
    expected = []
    for k in range(1, len(xs) + 1):  # by hand: population mean/std of the first k raw scores, then standardise x_k
        seen = xs[:k]
        mean = sum(seen) / k
        std = math.sqrt(sum((x - mean) ** 2 for x in seen) / k)
        expected.append((xs[k - 1] - mean) / (std + 1e-3))
    assert expected[0] == 0.0
    assert got == pytest.approx(expected, abs=1e-5)
    stats = judge.running_stats()
    assert stats["count"] == 6 and stats["mean"] == pytest.approx(sum(xs) / 6, abs=1e-6)
    assert float(judge.score(requests[:1])[0].raw) == pytest.approx(xs[0], abs=1e-5)  # raw: the unnormalised score
    raw.close()
    judge.close()


def test_reward_model_rejects(tmp_path, text_rm_dir):
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    two = tmp_path / "two"
    Qwen2ForSequenceClassification(Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                               num_attention_heads=2, num_key_value_heads=1, num_labels=2,
                                               pad_token_id=0)).save_pretrained(two)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(text_rm_dir["chat"])).save_pretrained(two)
    with pytest.raises(JudgeUnavailable, match="has 2 labels"):
        JUDGE_KINDS["reward_model"](name="rm", path=str(two))
    with pytest.raises(JudgeUnavailable, match="cannot load the model"):
        JUDGE_KINDS["reward_model"](name="rm", path=str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="option normalize must be one of none, running"):
        JUDGE_KINDS["reward_model"](name="rm", path=str(two), normalize="zscore")
    with pytest.raises(TypeError, match=r"unknown option\(s\) template"):
        JUDGE_KINDS["reward_model"](name="rm", path=str(two), template="correctness")


@pytest.fixture(scope="module")
def critic_dir(tmp_path_factory, judge_model_dir):
    from transformers import AutoModelForImageTextToText

    from mmrft.models.load import load_processor
    from mmrft.models.value import ValueModel

    torch.manual_seed(1)
    critic = ValueModel(AutoModelForImageTextToText.from_pretrained(str(judge_model_dir)))
    torch.nn.init.normal_(critic.value_head.weight, std=0.5)
    torch.nn.init.constant_(critic.value_head.bias, 0.25)
    out = tmp_path_factory.mktemp("critic") / "critic"
    critic.save(out, processor=load_processor(str(judge_model_dir)))
    return out, critic.eval()


def test_vl_reward_model_equals_a_direct_forward(critic_dir, image_files):
    from mmrft.models.load import load_processor

    path, critic = critic_dir
    requests = [make_requests(1, images=(image_files[0],))[0], make_requests(2)[1],
                make_requests(3, images=tuple(image_files))[2], make_requests(4, images=(image_files[1],))[3]]
    judge = JUDGE_KINDS["vl_reward_model"](name="vl", path=str(path), batch_size=3)
    processor = load_processor(str(path))
    expected = []
    with torch.no_grad():
        for r in requests:  # one at a time: no padding
            placeholders = "<|vision_start|><|image_pad|><|vision_end|>" * len(r.images)
            text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    f"{placeholders}{r.question}<|im_end|>\n<|im_start|>assistant\n{r.completion}")
            assert judge.text(r) == text
            from PIL import Image

            images = [Image.open(p).convert("RGB") for p in r.images] or None
            inputs = processor(text=[text], images=images, return_tensors="pt")
            inputs = {k: v for k, v in dict(inputs).items() if isinstance(v, torch.Tensor)}
            expected.append(float(critic(**inputs).logits[0, -1, 0]))
    got = judge.score(requests)
    assert all(r.ok for r in got)
    assert [r.score for r in got] == pytest.approx(expected, abs=1e-4)
    assert len(set(round(x, 4) for x in expected)) == len(expected)
    norm = JUDGE_KINDS["vl_reward_model"](name="vln", path=str(path), batch_size=2, normalize="running")
    assert norm.score(requests[:1])[0].score == 0.0 and norm.running_stats()["count"] == 1
    judge.close()
    norm.close()


def test_vl_reward_model_needs_a_value_head(judge_model_dir, tmp_path):
    with pytest.raises(JudgeUnavailable, match="has no value_head.safetensors.*ValueModel.save"):
        JUDGE_KINDS["vl_reward_model"](name="vl", path=str(judge_model_dir))
    with pytest.raises(ValueError, match="option prompt_format"):
        JUDGE_KINDS["vl_reward_model"](name="vl", path=str(judge_model_dir), prompt_format="r2")
