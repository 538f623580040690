"""`mmrft view RUN`: one self-contained HTML page of a run's rollout dumps (`RUN/rollouts/step_*.jsonl`).

The page needs no network: CSS and JS are inline, images are embedded as base64 thumbnails (each distinct image
once), and the dumps are a JSON block that the page's script renders with `textContent` only — completions are
model output, so they are never parsed as HTML. Every `<` in the JSON is written as `\\u003c`, so a completion that
contains `</script>` cannot end the block. The reward/accuracy curve is inline SVG drawn from `RUN/metrics.jsonl`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Optional

from mmrft import atomic
from mmrft.errors import MmrftError
from mmrft.track.metrics import read_metrics
from mmrft.track.rollouts import ROLLOUT_DIR, read_rollouts

THUMB_PX = 256  # longest side of an embedded image
JPEG_ABOVE = 48_000  # a PNG thumbnail bigger than this (photos) is re-encoded as JPEG
MAX_SOURCE_PIXELS = 100_000_000  # larger sources are not decoded (placeholder instead)
CURVE_W, CURVE_H, PAD_L, PAD_R, PAD_T, PAD_B = 560, 170, 40, 12, 22, 26


def write_viewer(run_dir: str | Path, out: str | Path | None = None, max_steps: Optional[int] = None) -> Path:
    """Write the viewer of `run_dir` to `out` (default `RUN/viewer.html`) atomically and return its path.

    `max_steps` keeps that many dumped steps, evenly spaced over the run and always including the first and the
    last (for long runs whose page would otherwise be large).
    """
    run_dir = Path(run_dir)
    if not (run_dir / ROLLOUT_DIR).is_dir():
        raise MmrftError(f"{run_dir}: no {ROLLOUT_DIR}/ directory: this run dumped no rollouts; train with "
                         f"tracking.rollouts_every=N (e.g. 10) to dump the completions of every N-th step")
    dumps = read_rollouts(run_dir)
    if not dumps:
        raise MmrftError(f"{run_dir / ROLLOUT_DIR}: no step_*.jsonl dumps yet (tracking.rollouts_every=N writes one "
                         f"every N steps)")
    steps = _pick(sorted(dumps), max_steps)
    images = _Images(run_dir)
    data = {
        "run": run_dir.resolve().name,
        "steps": [_step(s, dumps[s], images) for s in steps],
        "images": images.table,
        "curve": None,
    }
    svg, data["curve"] = _curve(read_metrics(run_dir))
    payload = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"))
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = (_TEMPLATE.replace("__TITLE__", html.escape(f"mmrft rollouts: {data['run']}"))
            .replace("__SVG__", svg).replace("__DATA__", payload))
    out = Path(out) if out else run_dir / "viewer.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_text(out, page)


def _pick(steps: list[int], k: Optional[int]) -> list[int]:
    if k is None or k >= len(steps):
        return steps
    if k <= 1:
        return steps[-1:] if k == 1 else []
    return sorted({steps[int(i * (len(steps) - 1) / (k - 1) + 0.5)] for i in range(k)})


def _finite(x: Any) -> Any:
    """NaN/inf -> None, recursively (JSON.parse rejects them)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _text(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)


def _step(step: int, rows: list[dict], images: _Images) -> dict:
    groups: dict[int, dict] = {}
    for r in sorted(rows, key=lambda r: (r.get("group", 0), r.get("index", 0))):
        g = groups.get(r.get("group", 0))
        if g is None:
            g = groups[r.get("group", 0)] = {
                "group": r.get("group", 0), "sample_id": str(r.get("sample_id", "")), "task": str(r.get("task", "")),
                "prompt": _text(r.get("prompt", "")), "answer": _text(r.get("answer", "")),
                "images": [images.add(p) for p in r.get("images") or []], "kept": bool(r.get("kept", True)),
                "completions": [],
            }
        g["completions"].append({
            "index": r.get("index", len(g["completions"])), "text": _text(r.get("completion", "")),
            "extracted": None if r.get("extracted") is None else _text(r["extracted"]),
            "reward": r.get("reward"), "components": r.get("components") or {},
            "correct": bool(r.get("correct")), "truncated": bool(r.get("truncated")), "length": r.get("length"),
            "kept": bool(r.get("kept", True)), "advantage": r.get("advantage"),
        })
    return {"step": step, "groups": list(groups.values())}


class _Images:
    """Image path -> id in `table`; each distinct path is read (and thumbnailed) once."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.ids: dict[str, str] = {}
        self.table: dict[str, dict] = {}

    def add(self, ref: Any) -> str:
        key = str(ref)
        if key not in self.ids:
            self.ids[key] = f"i{len(self.ids)}"
            self.table[self.ids[key]] = {"path": key, **self._embed(ref)}
        return self.ids[key]

    def _embed(self, ref: Any) -> dict:
        if not isinstance(ref, str) or not ref:
            return {"error": f"no image path recorded ({ref!r})"}
        path = Path(ref)
        if not path.is_absolute() and not path.exists() and (self.run_dir / path).exists():
            path = self.run_dir / path
        try:
            from PIL import Image

            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_SOURCE_PIXELS:
                    return {"error": f"image too large to embed ({w}x{h})"}
                im.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at reduced scale
                im = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P") else "RGB")
                im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
            mime = "image/png"
            if buf.tell() > JPEG_ABOVE:
                buf = io.BytesIO()
                im.convert("RGB").save(buf, format="JPEG", quality=85)
                mime = "image/jpeg"
        except Exception as e:  # noqa: BLE001 - any unreadable image becomes a placeholder, never a failed page
            reason = "file not found" if isinstance(e, FileNotFoundError) else f"{type(e).__name__}: {e}"
            return {"error": f"cannot read image: {reason}"}
        return {"src": f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}",
                "w": w, "h": h}


def _curve(metrics: list[dict]) -> tuple[str, Optional[dict]]:
    """Inline SVG of train reward/mean and accuracy (lines) and eval/accuracy (dots) by step, and the x scale the
    page uses to place the marker of the selected step. Only numbers and fixed labels go into the SVG."""
    keys = [("train reward/mean", "#2563eb", "train", "reward/mean"),
            ("train accuracy", "#16a34a", "train", "accuracy"),
            ("eval accuracy", "#ea580c", "eval", "eval/accuracy")]
    series = [(name, colour, [(r.get("step"), r.get(key)) for r in metrics if r.get("phase") == phase])
              for name, colour, phase, key in keys]
    series = [(n, c, [(float(s), float(v)) for s, v in pts
                      if isinstance(s, (int, float)) and isinstance(v, (int, float)) and math.isfinite(v)])
              for n, c, pts in series]
    series = [x for x in series if x[2]]
    open_tag = f'<svg data-testid="curve" class="curve" width="{CURVE_W}" height="{CURVE_H}" ' \
               f'viewBox="0 0 {CURVE_W} {CURVE_H}" role="img" aria-label="reward and accuracy by step">'
    if not series:
        return (open_tag + f'<text x="{CURVE_W / 2}" y="{CURVE_H / 2}" text-anchor="middle" fill="#666">'
                'no metrics.jsonl rows to plot</text></svg>'), None
    xs = [s for _, _, pts in series for s, _ in pts]
    ys = [v for _, _, pts in series for _, v in pts]
    s0, s1 = min(xs), max(xs)
    y0, y1 = min(0.0, math.floor(min(ys) * 2) / 2), max(1.0, math.ceil(max(ys) * 2) / 2)  # whole halves
    px0, px1, py0, py1 = PAD_L, CURVE_W - PAD_R, CURVE_H - PAD_B, PAD_T

    def X(s: float) -> float:
        return px0 + (s - s0) / ((s1 - s0) or 1) * (px1 - px0)

    def Y(v: float) -> float:
        return py0 + (v - y0) / ((y1 - y0) or 1) * (py1 - py0)

    parts = [open_tag, f'<rect x="{px0}" y="{py1}" width="{px1 - px0}" height="{py0 - py1}" fill="#fafafa" '
             'stroke="#ddd"/>']
    for v in sorted({y0, 0.0, 0.5, 1.0, y1}):
        parts.append(f'<line x1="{px0}" x2="{px1}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{px0 - 4}" y="{Y(v) + 3:.1f}" text-anchor="end" class="tick">{v:g}</text>')
    parts.append(f'<text x="{px0}" y="{CURVE_H - 8}" class="tick">step {s0:g}</text>'
                 f'<text x="{px1}" y="{CURVE_H - 8}" text-anchor="end" class="tick">step {s1:g}</text>')
    lx = px0
    for name, colour, pts in series:
        if name.startswith("eval"):
            parts += [f'<circle cx="{X(s):.1f}" cy="{Y(v):.1f}" r="3" fill="{colour}"/>' for s, v in pts]
        else:
            coords = " ".join(f"{X(s):.1f},{Y(v):.1f}" for s, v in pts)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        parts.append(f'<rect x="{lx}" y="6" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="15" class="tick">{name}</text>')
        lx += 14 + 7 * len(name) + 16
    parts.append(f'<line id="marker" data-testid="curve-marker" x1="{px0}" x2="{px0}" y1="{py1}" y2="{py0}" '
                 'stroke="#111" stroke-dasharray="3,3" visibility="hidden"/></svg>')
    return "".join(parts), {"s0": s0, "s1": s1, "px0": px0, "px1": px1}


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
<style>
[hidden]{display:none!important}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1f2328}
header{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #d0d7de;padding:10px 16px;
 display:flex;flex-wrap:wrap;gap:12px 24px;align-items:center}
header h1{font-size:16px;margin:0 8px 0 0}
.controls{display:flex;gap:6px;align-items:center;flex-wrap:wrap}
select,button{font:inherit;padding:3px 8px;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa;cursor:pointer}
button[aria-pressed=true]{background:#0969da;color:#fff;border-color:#0969da}
.curve{background:#fff;border:1px solid #d0d7de;border-radius:6px}
.curve .tick{font-size:10px;fill:#57606a}
main{padding:0 16px 12px}
.top{padding:12px 16px}
.group{background:#fff;border:1px solid #d0d7de;border-radius:8px;margin:0 0 14px;padding:12px}
.group.dropped{background:#fbfbfb;border-style:dashed}
.ghead{display:flex;gap:14px;align-items:flex-start}
.imgs{display:flex;gap:6px;flex-wrap:wrap}
.imgs img{max-width:160px;max-height:160px;border:1px solid #d0d7de;border-radius:4px;background:#fff}
.missing{width:150px;min-height:60px;padding:6px;border:2px dashed #cf222e;border-radius:4px;color:#cf222e;
 font-size:12px;overflow-wrap:anywhere;background:#fff5f5}
.meta{color:#57606a;font-size:12px;margin-bottom:4px}
.prompt{white-space:pre-wrap;margin:2px 0 6px;font-weight:500}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:10px;margin-top:10px}
.card{border:1px solid #d0d7de;border-left:4px solid #8c959f;border-radius:6px;padding:8px;background:#fff;
 display:flex;flex-direction:column;gap:4px;min-width:0}
.card.ok{border-left-color:#1a7f37}.card.bad{border-left-color:#cf222e}
.card pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;max-height:220px;overflow:auto;background:#f6f8fa;
 padding:6px;border-radius:4px;font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,monospace}
.badges{display:flex;gap:4px;flex-wrap:wrap}
.badge{font-size:11px;padding:1px 6px;border-radius:10px;background:#eaeef2;color:#24292f}
.b-correct{background:#dafbe1;color:#1a7f37}.b-incorrect{background:#ffebe9;color:#cf222e}
.b-truncated{background:#fff8c5;color:#9a6700}.b-dropped{background:#eaeef2;color:#57606a}
.kv{font-size:12px;color:#424a53;overflow-wrap:anywhere}.kv b{color:#1f2328}
.empty{color:#57606a;padding:20px;text-align:center}
</style></head>
<body>
<header>
 <h1 id="title"></h1>
 <div class="controls">
  <button id="prev" title="previous dumped step">&#8592;</button>
  <select id="step" data-testid="step-select" aria-label="step"></select>
  <button id="next" title="next dumped step">&#8594;</button>
 </div>
 <div class="controls" role="group" aria-label="filter completions">
  <button data-filter="all" data-testid="filter-all">all</button>
  <button data-filter="correct" data-testid="filter-correct">correct</button>
  <button data-filter="incorrect" data-testid="filter-incorrect">incorrect</button>
  <button data-filter="truncated" data-testid="filter-truncated">truncated</button>
  <span id="count" data-testid="count" class="meta"></span>
 </div>
</header>
<div class="top">__SVG__</div>
<main id="groups" data-testid="groups"></main>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const FILTERS = {all: c => true, correct: c => c.correct, incorrect: c => !c.correct, truncated: c => c.truncated};
const state = {step: DATA.steps.length - 1, filter: "all"};
const stepSel = document.getElementById("step"), groupsEl = document.getElementById("groups");

function el(tag, cls, text, attrs) {  // text always via textContent: dumped text is untrusted model output
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}
const num = (v, signed) => (v === null || v === undefined) ? "\u2014" : (signed && v > 0 ? "+" : "") + Number(v).toFixed(2);
function kv(label, value) { const d = el("div", "kv"); d.append(el("b", null, label + " "), document.createTextNode(value)); return d; }

function card(c) {
  const d = el("div", "card " + (c.correct ? "ok" : "bad"), null, {"data-testid": "completion",
    "data-correct": c.correct, "data-truncated": c.truncated, "data-index": c.index});
  d._c = c;
  const badges = el("div", "badges");
  badges.append(el("span", "badge", "#" + c.index));
  badges.append(c.correct ? el("span", "badge b-correct", "correct") : el("span", "badge b-incorrect", "incorrect"));
  if (c.truncated) badges.append(el("span", "badge b-truncated", "truncated"));
  badges.append(c.kept ? el("span", "badge", "kept") : el("span", "badge b-dropped", "dropped by filter"));
  d.append(badges, el("pre", null, c.text, {"data-testid": "completion-text"}));
  d.append(kv("extracted", c.extracted === null ? "(none)" : c.extracted));
  const comps = Object.entries(c.components).map(([k, v]) => k + " " + num(v)).join(" \u00b7 ");
  d.append(kv("reward", num(c.reward) + (comps ? "  (" + comps + ")" : "")));
  d.append(kv("advantage", c.advantage === null ? "\u2014 (not trained)" : num(c.advantage, true)));
  if (c.length !== null && c.length !== undefined) d.append(kv("tokens", c.length));
  return d;
}

function group(g) {
  const s = el("section", "group" + (g.kept ? "" : " dropped"), null, {"data-testid": "group", "data-sample-id": g.sample_id});
  const head = el("div", "ghead"), imgs = el("div", "imgs"), info = el("div");
  for (const id of g.images) {
    const im = DATA.images[id];
    if (im && im.src) imgs.append(el("img", null, null, {src: im.src, alt: im.path, title: im.path, "data-testid": "image"}));
    else imgs.append(el("div", "missing", (im ? im.error : "missing image") + ": " + (im ? im.path : id), {"data-testid": "image-missing"}));
  }
  const ok = g.completions.filter(c => c.correct).length, rs = g.completions.map(c => c.reward).filter(v => v !== null);
  info.append(el("div", "meta", "group " + g.group + " \u00b7 " + g.sample_id + " \u00b7 " + g.task + " \u00b7 " + ok + "/" +
    g.completions.length + " correct \u00b7 mean reward " + num(rs.length ? rs.reduce((a, b) => a + b, 0) / rs.length : null) +
    (g.kept ? "" : " \u00b7 dropped by filter (no update)")));
  info.append(el("div", "prompt", g.prompt, {"data-testid": "prompt"}));
  info.append(kv("gold answer", g.answer));
  head.append(imgs, info);
  const cards = el("div", "cards");
  for (const c of g.completions) cards.append(card(c));
  s.append(head, cards);
  return s;
}

function applyFilter() {
  const match = FILTERS[state.filter];
  let shown = 0, total = 0;
  for (const s of groupsEl.querySelectorAll("section.group")) {
    let any = false;
    for (const d of s.querySelectorAll(".card")) { const m = match(d._c); d.hidden = !m; any = any || m; shown += m; total++; }
    s.hidden = !any;
  }
  document.getElementById("empty").hidden = shown > 0;
  document.getElementById("count").textContent = shown + " of " + total + " completions";
  for (const b of document.querySelectorAll("[data-filter]")) b.setAttribute("aria-pressed", b.dataset.filter === state.filter);
}

function render() {
  const st = DATA.steps[state.step];
  stepSel.value = String(state.step);
  groupsEl.replaceChildren(...st.groups.map(group), el("div", "empty", "no completion of this step matches the filter", {id: "empty"}));
  const all = st.groups.flatMap(g => g.completions);
  for (const b of document.querySelectorAll("[data-filter]"))
    b.textContent = b.dataset.filter + " (" + all.filter(FILTERS[b.dataset.filter]).length + ")";
  const m = document.getElementById("marker"), cv = DATA.curve;
  if (m && cv) {
    const x = cv.px0 + (st.step - cv.s0) / ((cv.s1 - cv.s0) || 1) * (cv.px1 - cv.px0);
    const inside = st.step >= cv.s0 && st.step <= cv.s1;
    m.setAttribute("x1", x); m.setAttribute("x2", x); m.setAttribute("visibility", inside ? "visible" : "hidden");
  }
  applyFilter();
}

document.getElementById("title").textContent = "rollouts \u00b7 " + DATA.run;
DATA.steps.forEach((st, i) => {
  const all = st.groups.flatMap(g => g.completions), ok = all.filter(c => c.correct).length;
  stepSel.append(el("option", null, "step " + st.step + " \u2014 " + st.groups.length + " groups, " + ok + "/" + all.length + " correct", {value: i}));
});
stepSel.addEventListener("change", () => { state.step = Number(stepSel.value); render(); });
document.getElementById("prev").addEventListener("click", () => { if (state.step > 0) { state.step--; render(); } });
document.getElementById("next").addEventListener("click", () => { if (state.step < DATA.steps.length - 1) { state.step++; render(); } });
for (const b of document.querySelectorAll("[data-filter]"))
  b.addEventListener("click", () => { state.filter = b.dataset.filter; applyFilter(); });
if (DATA.steps.length) render(); else groupsEl.append(el("div", "empty", "no rollouts dumped"));
</script>
</body></html>
"""
