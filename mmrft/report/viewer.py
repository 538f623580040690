"""`mmrft view RUN`: one self-contained HTML page of a run's rollout dumps (`RUN/rollouts/step_*.jsonl`).

The page needs no network: CSS and JS are inline, images are embedded as base64 thumbnails (each distinct image
once), and the dumps are a JSON block that the page's script renders with `textContent` only — completions are
model output, so they are never parsed as HTML. Every `<` in the JSON is written as `\\u003c`, so a completion that
contains `</script>` cannot end the block. The reward/accuracy curve is inline SVG drawn from `RUN/metrics.jsonl`.

A multi-turn row (one with `turns`, `calls` and `end`, see `mmrft.track.rollouts`) is shown turn by turn: each
assistant turn's text with the tool calls it made (name, arguments, error), each tool turn's text and the images it
returned, and the end reason. Calls are matched to the assistant turn that wrote them by parsing its `<tool_call>`
blocks as the tool environment did (`mmrft.tools.parse_tool_calls`), and to their answers by the tool turn's
`<tool_response>` blocks. A successful `zoom_in` is drawn as a box on the image it cropped: the box is the pixel box
its answer names ("Zoomed in on image k at [x1, y1, x2, y2] (pixels)"), not the model's `bbox_2d` (whose convention
depends on the model family); an answer that names none draws no box.
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
from mmrft.report.trajectory_view import trajectory_view
from mmrft.report.viewer_page import TEMPLATE as _TEMPLATE
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
            **({"trajectory": trajectory_view(r, g["images"], images)} if isinstance(r.get("turns"), list) else {}),
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
