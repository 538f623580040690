"""`mmrft view`: the self-contained HTML rollout viewer.

The first tests read the written file; those marked `browser` open it in headless Chromium through selenium and are
skipped when chromium, chromedriver or selenium is missing (`apt-get install chromium chromium-driver`,
`pip install selenium`).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mmrft.data.synthetic import write_dataset
from mmrft.errors import MmrftError
from mmrft.report.viewer import write_viewer
from mmrft.track.rollouts import write_rollouts

XSS = "</script><script>window.__pwned = 1; alert(1)</script>"
XSS_PROMPT = 'How many circles? <img src=x onerror="window.__pwned2 = 1">'


def _row(step, group, index, sample, completion, *, correct, reward, truncated=False, kept=True, adv=0.5,
         prompt=None, images=None):
    return {"step": step, "group": group, "index": index, "sample_id": sample["id"], "task": "count",
            "prompt": prompt or sample["prompt"], "images": sample["images"] if images is None else images,
            "answer": sample["answer"], "completion": completion, "extracted": sample["answer"] if correct else "0",
            "reward": reward, "components": {"count": reward, "format": 1.0}, "correct": correct,
            "truncated": truncated, "length": 40 + index, "kept": kept, "advantage": adv if kept else None}


def _ok(s):
    return f"<think>I count the circles one by one.</think> <answer>{s['answer']}</answer>"


def make_run(root: Path) -> tuple[Path, dict[int, list[dict]]]:
    """A run with two dumped steps. Step 4: two plain groups. Step 8 (shown first): injected markup, a truncated
    completion, a missing image, a dropped group, and an image already used at step 4."""
    data = write_dataset("count", 4, root / "data", seed=0)
    samples = [json.loads(line) for line in data.read_text().splitlines()]
    for s in samples:
        s["images"] = [str(data.parent / p) for p in s["images"]]
    s0, s1, s2, s3 = samples
    run = root / "run"
    rows = {
        4: [_row(4, 0, 0, s0, _ok(s0), correct=True, reward=1.0),
            _row(4, 0, 1, s0, "<answer>0</answer>", correct=False, reward=0.0, adv=-0.5),
            _row(4, 1, 0, s1, "<answer>9</answer>", correct=False, reward=0.0, adv=-0.5),
            _row(4, 1, 1, s1, _ok(s1), correct=True, reward=1.0)],
        8: [_row(8, 0, 0, s2, _ok(s2), correct=True, reward=1.0, prompt=XSS_PROMPT),
            _row(8, 0, 1, s2, f"<think>{XSS}</think><answer>0</answer>", correct=False, reward=0.0, adv=-0.9),
            _row(8, 0, 2, s2, "<b>bold</b> & <i>x</i> <answer>0</answer>", correct=False, reward=0.1, adv=-0.7),
            _row(8, 0, 3, s2, "<think>one, two, three, four, five, six, se", correct=False, reward=0.0,
                 truncated=True, adv=-0.9),
            _row(8, 1, 0, s3, _ok(s3), correct=True, reward=1.0, kept=False),
            _row(8, 1, 1, s3, _ok(s3), correct=True, reward=1.0, kept=False),
            _row(8, 2, 0, s0, _ok(s0), correct=True, reward=1.0, images=[str(root / "gone.png")]),
            _row(8, 2, 1, s0, "<answer>1</answer>", correct=False, reward=0.0),
            _row(8, 3, 0, s0, _ok(s0), correct=True, reward=1.0),
            _row(8, 3, 1, s0, _ok(s0), correct=True, reward=1.0)],
    }
    for step, r in rows.items():
        write_rollouts(run, step, r)
    metrics = [{"step": i, "phase": "train", "reward/mean": 0.1 * i, "accuracy": 0.08 * i} for i in range(1, 9)]
    metrics += [{"step": 4, "phase": "eval", "eval/accuracy": 0.3}, {"step": 8, "phase": "eval", "eval/accuracy": 0.6}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return run, rows


def payload(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert m, "no JSON data block"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("viewer"))


@pytest.fixture(scope="module")
def page(run):
    return write_viewer(run[0])


def test_default_path_and_cli(run, tmp_path):
    from mmrft.cli import main

    out = write_viewer(run[0], tmp_path / "sub" / "v.html")
    assert out == tmp_path / "sub" / "v.html" and out.is_file()
    assert main(["view", str(run[0]), "--out", str(tmp_path / "cli.html")]) == 0
    assert (tmp_path / "cli.html").read_text() == out.read_text()
    assert write_viewer(run[0]) == run[0] / "viewer.html"
    assert not [p for p in run[0].iterdir() if ".tmp-" in p.name]


def test_no_rollouts_is_a_clear_error(tmp_path):
    with pytest.raises(MmrftError, match=r"tracking\.rollouts_every"):
        write_viewer(tmp_path)
    (tmp_path / "rollouts").mkdir()
    with pytest.raises(MmrftError, match="no step_"):
        write_viewer(tmp_path)


def test_self_contained(page):
    text = page.read_text()
    assert not re.search(r"https?://", text)
    assert "@import" not in text and "url(" not in text
    markup = re.sub(r'<script type="application/json" id="data">.*?</script>', "", text, flags=re.S)
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", markup)
    assert refs and all(r.startswith("data:") for r in refs), refs


def test_data_round_trips(run, page):
    run_dir, rows = run
    data = payload(page.read_text())
    assert [s["step"] for s in data["steps"]] == sorted(rows)
    for st in data["steps"]:
        want = rows[st["step"]]
        got = [c for g in st["groups"] for c in g["completions"]]
        assert [c["text"] for c in got] == [r["completion"] for r in want]
        assert [c["correct"] for c in got] == [r["correct"] for r in want]
        assert [g["sample_id"] for g in st["groups"]] == [r["sample_id"] for r in want if r["index"] == 0]
    step8 = data["steps"][1]["groups"]
    assert step8[0]["prompt"] == XSS_PROMPT
    assert step8[1]["kept"] is False and all(c["advantage"] is None for c in step8[1]["completions"])
    assert step8[0]["completions"][3]["truncated"] is True
    assert data["curve"] is not None and data["run"] == "run"


def test_markup_is_escaped(page):
    text = page.read_text()
    assert text.count("<script") == 2 and text.count("</script>") == 2
    assert "<b>bold" not in text and "<img src=x" not in text and "alert(1)</" not in text
    assert "\\u003c/script\\u003e\\u003cscript\\u003ewindow.__pwned" in text


def test_images_embedded_once_with_placeholder(run, page):
    run_dir, rows = run
    data = payload(page.read_text())
    paths = {p for r in rows.values() for row in r for p in row["images"]}
    assert sorted(im["path"] for im in data["images"].values()) == sorted(paths)
    missing = [im for im in data["images"].values() if "src" not in im]
    assert len(missing) == 1 and missing[0]["path"].endswith("gone.png") and "not found" in missing[0]["error"]
    for im in data["images"].values():
        if "src" in im:
            head, b64 = im["src"].split(",", 1)
            assert head == "data:image/png;base64"
            assert max(Image.open(io.BytesIO(base64.b64decode(b64))).size) <= 256


def test_large_image_is_thumbnailed(tmp_path):
    big = tmp_path / "big.png"
    Image.frombytes("RGB", (1200, 900), os.urandom(1200 * 900 * 3)).save(big)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    s = {"id": "x", "prompt": "q?", "answer": "1", "images": [str(big), str(bad)]}
    write_rollouts(tmp_path, 1, [_row(1, 0, 0, s, "a", correct=True, reward=1.0)])
    data = payload(write_viewer(tmp_path).read_text())
    ims = {Path(im["path"]).name: im for im in data["images"].values()}
    head, b64 = ims["big.png"]["src"].split(",", 1)
    assert head == "data:image/jpeg;base64"  # noise does not compress: re-encoded as JPEG
    assert Image.open(io.BytesIO(base64.b64decode(b64))).size == (256, 192)
    assert "cannot read image" in ims["bad.png"]["error"]
    assert '<text' in write_viewer(tmp_path).read_text() and data["curve"] is None  # no metrics: a message


def test_curve_and_max_steps(tmp_path):
    s = {"id": "x", "prompt": "q?", "answer": "1", "images": []}
    for step in range(1, 11):
        write_rollouts(tmp_path, step, [_row(step, 0, 0, s, "a", correct=True, reward=1.0)])
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "phase": "train", "reward/mean": float("nan")})
                                            + "\n" + json.dumps({"step": 2, "phase": "eval", "eval/accuracy": 0.5})
                                            + "\n")
    text = write_viewer(tmp_path, max_steps=3).read_text()
    assert [st["step"] for st in payload(text)["steps"]] == [1, 6, 10]
    assert "<circle" in text and "<polyline" not in text  # NaN train reward dropped, the eval point drawn


# ------------------------------------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def driver():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("chromium/chromedriver not found (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=chromedriver))
    yield d
    d.quit()


def _open(driver, page):
    driver.get(page.resolve().as_uri())
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    return driver


@pytest.fixture
def browser(driver, page):
    return _open(driver, page)


def _css(d, sel):
    return d.find_elements("css selector", sel)


def _visible(d, sel):
    return [e for e in _css(d, sel) if e.is_displayed()]


def _select_step(d, step):
    from selenium.webdriver.support.ui import Select

    (opt,) = [o for o in _css(d, '[data-testid="step-select"] option') if o.text.startswith(f"step {step} ")]
    Select(_css(d, '[data-testid="step-select"]')[0]).select_by_value(opt.get_attribute("value"))


@pytest.mark.browser
def test_page_renders_last_step_with_images(browser, run):
    rows = run[1][8]
    assert len(_css(browser, '[data-testid="step-select"] option')) == 2
    assert len(_visible(browser, '[data-testid="group"]')) == 4
    assert _visible(browser, '[data-testid="curve"]')
    from selenium.webdriver.support.ui import WebDriverWait

    imgs = _css(browser, 'img[data-testid="image"]')
    assert len(imgs) == 3  # groups 0, 1, 3; group 2's image is missing
    WebDriverWait(browser, 10).until(lambda d: all(i.get_property("complete") for i in imgs))
    assert all(i.get_property("naturalWidth") > 0 for i in imgs)
    (ph,) = _css(browser, '[data-testid="image-missing"]')
    assert ph.is_displayed() and "gone.png" in ph.text and "not found" in ph.text
    texts = [e.get_property("textContent") for e in _css(browser, '[data-testid="completion-text"]')]
    assert texts == [r["completion"] for r in rows]


@pytest.mark.browser
def test_injected_markup_shows_as_text(browser):
    assert browser.execute_script("return [window.__pwned, window.__pwned2]") == [None, None]
    assert not _css(browser, "main script") and not _css(browser, "pre b") and not _css(browser, "main img[src=x]")
    texts = [e.text for e in _css(browser, '[data-testid="completion-text"]')]
    assert any(XSS in t for t in texts) and any(t.startswith("<b>bold</b> & <i>x</i>") for t in texts)
    assert _css(browser, '[data-testid="prompt"]')[0].text == XSS_PROMPT


@pytest.mark.browser
def test_step_switch_and_filters(browser, run):
    _, rows = run
    for step in (4, 8, 4):
        _select_step(browser, step)
        ids = [g.get_attribute("data-sample-id") for g in _visible(browser, '[data-testid="group"]')]
        assert ids == [r["sample_id"] for r in rows[step] if r["index"] == 0]
        assert len(_visible(browser, '[data-testid="completion"]')) == len(rows[step])
    _select_step(browser, 8)
    keep = {"all": lambda r: True, "correct": lambda r: r["correct"], "incorrect": lambda r: not r["correct"],
            "truncated": lambda r: r["truncated"]}
    for name, pred in keep.items():
        _css(browser, f'[data-testid="filter-{name}"]')[0].click()
        want = [r for r in rows[8] if pred(r)]
        cards = _visible(browser, '[data-testid="completion"]')
        assert [c.find_element("css selector", "pre").get_property("textContent") for c in cards] == \
            [r["completion"] for r in want], name
        groups = _visible(browser, '[data-testid="group"]')
        assert len(groups) == len({r["group"] for r in want}), name
    _css(browser, '[data-testid="filter-correct"]')[0].click()
    _select_step(browser, 4)  # the filter stays on when the step changes
    assert len(_visible(browser, '[data-testid="completion"]')) == sum(r["correct"] for r in rows[4])
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


# ------------------------------------------------------------------------------------------ multi-turn trajectories

XSS_ARG = '<img src=x onerror="window.__pwned3 = 1">'
XSS_TOOL = "</script><script>window.__pwned4 = 1</script><b>tool</b>"
ORIG_W, ORIG_H = 640, 320  # larger than a thumbnail: the page shows it scaled
BOX = [100, 20, 150, 60]  # the pixel box the first zoom_in's answer names (on image 0)
BOX2 = [10, 5, 40, 35]  # the second successful zoom_in's (on image 1, the first returned image)


def _png(path: Path, size, colour) -> str:
    Image.new("RGB", size, colour).save(path)
    return str(path)


def _call(name, arguments):
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def _response(*texts):
    return "\n".join(f"<tool_response>\n{t}\n</tool_response>" for t in texts)


def make_trajectory_run(root: Path) -> tuple[Path, list[dict]]:
    """One dumped step of multi-turn rows, written as `mmrft.track.rollouts` writes them. Group 0: a trajectory with
    a zoom_in (answer names its pixel box), then a failed zoom_in whose arguments carry markup and a zoom_in on the
    returned image, then the answer; a trajectory that re-zooms to the same crop (the same returned PNG) and ends at
    max_turns; a zoom_in whose answer names no box. Group 1: a single-turn row."""
    root.mkdir(parents=True, exist_ok=True)
    orig = _png(root / "orig.png", (ORIG_W, ORIG_H), (240, 240, 240))
    other = _png(root / "other.png", (64, 64), (0, 0, 255))
    images = root / "run" / "rollouts" / "images"
    images.mkdir(parents=True)
    crop = _png(images / "0123456789abcdef.png", (50, 40), (255, 0, 0))
    crop2 = _png(images / "fedcba9876543210.png", (60, 60), (0, 160, 0))
    s0 = {"id": "card-0", "prompt": "What digit is on the small card?", "answer": "7", "images": [orig]}
    s1 = {"id": "plain-1", "prompt": "How many circles?", "answer": "2", "images": [other]}
    t0 = [
        {"role": "assistant", "text": "<think>too small</think>" + _call("zoom_in", {"bbox_2d": [156, 62, 234, 187]})},
        {"role": "tool", "text": _response(f"Zoomed in on image 0 at {BOX} (pixels); this is image 1."), "images": [crop]},
        {"role": "assistant", "text": "<think>closer</think>" + _call("zoom_in", {"bbox_2d": [5, 5, 5, 5],
                                                                                    "label": XSS_ARG})
         + _call("zoom_in", {"bbox_2d": [10, 5, 40, 35], "image_index": 1})},
        {"role": "tool", "text": _response("Error: the box [5, 5, 5, 5] has no area " + XSS_TOOL,
                                           f"Zoomed in on image 1 at {BOX2} (pixels) (digit); this is image 2."),
         "images": [crop2]},
        {"role": "assistant", "text": "<think>a seven</think><answer>7</answer>"},
    ]
    c0 = [{"name": "zoom_in", "arguments": {"bbox_2d": [156, 62, 234, 187]}, "error": None},
          {"name": "zoom_in", "arguments": {"bbox_2d": [5, 5, 5, 5], "label": XSS_ARG}, "error": "bad_arguments"},
          {"name": "zoom_in", "arguments": {"bbox_2d": [10, 5, 40, 35], "image_index": 1}, "error": None}]
    t1 = [t0[0], t0[1], {"role": "assistant", "text": "<think>again</think>" + _call("zoom_in", {"bbox_2d": [1, 2]})}]
    c1 = [c0[0], {"name": "zoom_in", "arguments": {"bbox_2d": [1, 2]}, "error": "bad_arguments"}]
    t2 = [t0[0], {"role": "tool", "text": _response("Zoomed in on image 0; this is image 1."), "images": [crop]},
          {"role": "assistant", "text": "<answer>1</answer>"}]
    rows = [
        {**_row(3, 0, 0, s0, "<think>a seven</think><answer>7</answer>", correct=True, reward=1.0),
         "turns": t0, "calls": c0, "end": "answer"},
        {**_row(3, 0, 1, s0, t1[-1]["text"], correct=False, reward=0.0, adv=-0.5), "turns": t1, "calls": c1,
         "end": "max_turns"},
        {**_row(3, 0, 2, s0, "<answer>1</answer>", correct=False, reward=0.0, adv=-0.5), "turns": t2,
         "calls": c0[:1], "end": "answer"},
        _row(3, 1, 0, s1, "<answer>2</answer>", correct=True, reward=1.0),
    ]
    run = root / "run"
    write_rollouts(run, 3, rows)
    return run, rows


@pytest.fixture(scope="module")
def traj_run(tmp_path_factory):
    return make_trajectory_run(tmp_path_factory.mktemp("trajectories"))


@pytest.fixture(scope="module")
def traj_page(traj_run):
    return write_viewer(traj_run[0])


def _completions(data):
    return [c for st in data["steps"] for g in st["groups"] for c in g["completions"]]


def test_trajectory_round_trips(traj_run, traj_page):
    _, rows = traj_run
    cs = _completions(payload(traj_page.read_text()))
    assert [c["text"] for c in cs] == [r["completion"] for r in rows]
    for c, r in zip(cs[:3], rows[:3]):
        t = c["trajectory"]
        assert t["end"] == r["end"]
        assert [(u["role"], u["text"]) for u in t["turns"]] == [(u["role"], u["text"]) for u in r["turns"]]
        got = [x for u in t["turns"] for x in u.get("calls", [])]
        assert [(x["name"], x["arguments"], x["error"]) for x in got] == \
            [(x["name"], x["arguments"], x["error"]) for x in r["calls"]]
        assert "calls" not in t  # every call matched to the turn that made it
    turns = cs[0]["trajectory"]["turns"]
    assert [len(u.get("calls", [])) for u in turns] == [1, 0, 2, 0, 0]  # the answer turn made none
    assert [u.get("first") for u in turns if u["role"] == "tool"] == [1, 2]  # numbering: the original is image 0
    assert "trajectory" not in cs[3] and set(cs[3]) == set(cs[0]) - {"trajectory"}  # a single-turn row as before


def test_single_turn_rows_have_no_trajectory(page):
    for c in _completions(payload(page.read_text())):
        assert set(c) == {"index", "text", "extracted", "reward", "components", "correct", "truncated", "length",
                          "kept", "advantage"}


def test_returned_images_embedded_once(traj_run, traj_page):
    _, rows = traj_run
    data = payload(traj_page.read_text())
    paths = [im["path"] for im in data["images"].values()]
    want = {p for r in rows for p in r["images"]} | {p for r in rows for u in r.get("turns", [])
                                                     for p in u.get("images", [])}
    assert sorted(paths) == sorted(want) and len(want) == 4  # two originals, two crops: each once
    ids = {im["path"]: i for i, im in data["images"].items()}
    cs = _completions(data)
    tool_images = [[u["images"] for u in c["trajectory"]["turns"] if u["role"] == "tool"] for c in cs[:3]]
    crop, crop2 = rows[0]["turns"][1]["images"][0], rows[0]["turns"][3]["images"][0]
    assert tool_images == [[[ids[crop]], [ids[crop2]]], [[ids[crop]]], [[ids[crop]]]]
    for p in (crop, crop2):
        im = data["images"][ids[p]]
        assert im["src"].startswith("data:image/png;base64,") and (im["w"], im["h"]) == Image.open(p).size


def test_zoom_box_from_the_tool_answer(traj_run, traj_page):
    _, rows = traj_run
    data = payload(traj_page.read_text())
    ids = {im["path"]: i for i, im in data["images"].items()}
    cs = _completions(data)
    calls = [x for u in cs[0]["trajectory"]["turns"] for x in u.get("calls", [])]
    assert calls[0]["box"] == {"index": 0, "image": ids[rows[0]["images"][0]], "px": BOX}
    assert calls[1]["box"] is None  # failed
    assert calls[2]["box"] == {"index": 1, "image": ids[rows[0]["turns"][1]["images"][0]], "px": BOX2}
    assert data["images"][calls[0]["box"]["image"]]["w"] == ORIG_W  # the box is in the source's pixels
    calls1 = [x for u in cs[1]["trajectory"]["turns"] for x in u.get("calls", [])]
    assert calls1[0]["box"]["px"] == BOX and calls1[1]["box"] is None  # the last call has no answer: no box
    calls2 = [x for u in cs[2]["trajectory"]["turns"] for x in u.get("calls", [])]
    assert calls2 == [{"name": "zoom_in", "arguments": rows[2]["calls"][0]["arguments"], "error": None, "box": None}]


@pytest.mark.parametrize("answer", [
    "Zoomed in on image 0 at [100, 20, 150] (pixels); this is image 1.",
    "Zoomed in on image 0 at [150, 20, 100, 60] (pixels); this is image 1.",
    "Zoomed in on image 0 at [a, b, c, d] (pixels); this is image 1.",
    "Zoomed in on image 7 at [1, 2, 3, 4] (pixels); this is image 8.",
    "Zoomed in on image 0 at [nan, 2, 3, 4] (pixels); this is image 1.",
    "",
])
def test_unparseable_zoom_answer_draws_no_box(tmp_path, answer):
    im = _png(tmp_path / "a.png", (40, 30), (9, 9, 9))
    s = {"id": "x", "prompt": "q?", "answer": "1", "images": [im]}
    row = {**_row(1, 0, 0, s, "<answer>1</answer>", correct=True, reward=1.0), "end": "answer",
           "turns": [{"role": "assistant", "text": _call("zoom_in", {"bbox_2d": [0, 0, 9, 9]})},
                     {"role": "tool", "text": _response(answer)}, {"role": "assistant", "text": "<answer>1</answer>"}],
           "calls": [{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 9, 9]}, "error": None}]}
    write_rollouts(tmp_path, 1, [row])
    (c,) = _completions(payload(write_viewer(tmp_path).read_text()))
    assert c["trajectory"]["turns"][0]["calls"][0]["box"] is None


def test_calls_that_do_not_match_the_turns_are_listed(tmp_path):
    """An environment of one's own (no <tool_call> blocks): the calls are listed after the turns, with no box; a
    malformed dump (turns not dicts, images not a list) still renders."""
    s = {"id": "x", "prompt": "q?", "answer": "1", "images": []}
    calls = [{"name": "open_drawer", "arguments": {"label": "A"}, "error": None}, "junk"]
    row = {**_row(1, 0, 0, s, "done", correct=True, reward=1.0), "end": "answer", "calls": calls,
           "turns": [{"role": "assistant", "text": "open A"}, "junk", {"role": "tool", "text": "A: a key", "images": "x"},
                     {"role": "assistant", "text": "done"}]}
    write_rollouts(tmp_path, 1, [row])
    (c,) = _completions(payload(write_viewer(tmp_path).read_text()))
    t = c["trajectory"]
    assert [u["role"] for u in t["turns"]] == ["assistant", "tool", "assistant"]
    assert all("calls" not in u for u in t["turns"]) and t["turns"][1]["images"] == []
    assert [x["name"] for x in t["calls"]] == ["open_drawer", None]


def test_trajectory_markup_is_escaped(traj_page):
    text = traj_page.read_text()
    assert text.count("<script") == 2 and text.count("</script>") == 2
    assert "<img src=x" not in text and "<b>tool" not in text and "<tool_call>" not in text
    assert "<tool_response>" not in text and "__pwned4 = 1</" not in text
    assert "\\u003cimg src=x onerror" in text and "\\u003c/script\\u003e\\u003cscript\\u003ewindow.__pwned4" in text


@pytest.mark.browser
def test_trajectory_renders_turn_by_turn(driver, traj_run, traj_page):
    from selenium.webdriver.support.ui import WebDriverWait

    _, rows = traj_run
    d = _open(driver, traj_page)
    cards = _visible(d, '[data-testid="completion"]')
    assert len(cards) == 4
    assert not cards[3].find_elements("css selector", '[data-testid="trajectory"]')  # the single-turn row
    card = cards[0]
    turns = card.find_elements("css selector", '[data-testid="turn"]')
    assert all(t.is_displayed() for t in turns)
    assert [(t.get_attribute("data-role"), t.find_element("css selector", '[data-testid="turn-text"]')
             .get_property("textContent")) for t in turns] == [(u["role"], u["text"]) for u in rows[0]["turns"]]
    (end,) = card.find_elements("css selector", '[data-testid="end"]')
    assert end.text == "end: answer"
    assert cards[1].find_element("css selector", '[data-testid="end"]').text == "end: max_turns"

    calls = card.find_elements("css selector", '[data-testid="call"]')
    assert [c.get_attribute("data-failed") for c in calls] == ["false", "true", "false"]
    assert "failed" in calls[1].get_attribute("class").split()
    assert calls[1].find_element("css selector", '[data-testid="call-error"]').text == "error: bad_arguments"
    assert json.loads(calls[1].find_element("css selector", '[data-testid="call-args"]')
                      .get_property("textContent")) == rows[0]["calls"][1]["arguments"]
    assert calls[1].value_of_css_property("background-color") != calls[0].value_of_css_property("background-color")
    assert not calls[1].find_elements("css selector", '[data-testid="zoom"]')

    returned = card.find_elements("css selector", 'img[data-testid="tool-image"]')
    assert len(returned) == 2 and all(i.is_displayed() for i in returned)
    WebDriverWait(d, 10).until(lambda _: all(i.get_property("complete") for i in _css(d, "img")))
    assert [i.get_property("naturalWidth") for i in returned] == [50, 60]
    assert returned[0].get_attribute("title").startswith("image 1: ")

    for call, box, (w, h) in ((calls[0], BOX, (ORIG_W, ORIG_H)), (calls[2], BOX2, (50, 40))):
        img = call.find_element("css selector", 'img[data-testid="zoom-image"]')
        rect = call.find_element("css selector", '[data-testid="zoom-rect"]')
        assert img.is_displayed() and rect.is_displayed()
        i, r = (d.execute_script("const b = arguments[0].getBoundingClientRect();"
                                 "return [b.left, b.top, b.width, b.height]", e) for e in (img, rect))
        sx, sy = i[2] / w, i[3] / h
        want = [box[0] * sx, box[1] * sy, (box[2] - box[0]) * sx, (box[3] - box[1]) * sy]
        assert [r[0] - i[0], r[1] - i[1], r[2], r[3]] == pytest.approx(want, abs=1.0), (i, r)
    assert d.execute_script("return [window.__pwned3, window.__pwned4]") == [None, None]
    assert not _css(d, "main script") and not _css(d, "main img[src=x]") and not _css(d, "pre b")
    assert any(XSS_TOOL in e.get_property("textContent") for e in _css(d, '[data-testid="turn-text"]'))
    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
