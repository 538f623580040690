"""The viewer's page (`mmrft view`, `mmrft.report.viewer`): its HTML, CSS and script, with the slots `__TITLE__`,
`__SVG__` (the curve) and `__DATA__` (the dumps as JSON, every `<` escaped). The script renders model output with
`textContent` only and loads nothing from the network."""

TEMPLATE = r"""<!DOCTYPE html>
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
@media (min-width:900px){.card.traj{grid-column:span 2}}
.b-end{background:#ddf4ff;color:#0969da}.b-end.limit{background:#fff8c5;color:#9a6700}
details.traj{border-top:1px solid #eaeef2;padding-top:4px}
details.traj summary{cursor:pointer;font-size:12px;color:#424a53}
ol.turns{list-style:none;margin:6px 0 0;padding:0;display:flex;flex-direction:column;gap:6px}
.turn{border-left:3px solid #0969da;padding:2px 0 2px 8px}.turn.tool{border-left-color:#8250df}
.role{font-size:11px;font-weight:600;color:#57606a;text-transform:uppercase;letter-spacing:.03em}
.call{border:1px solid #d0d7de;border-radius:4px;padding:4px 6px;margin-top:4px;font-size:12px;background:#fff}
.call.failed{border-color:#cf222e;background:#fff5f5}
.call code{font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.call .cname{font-weight:600;margin-right:6px}
.zoom{margin:4px 0 0;display:flex;gap:8px;align-items:flex-end}
.zoom figcaption{font-size:11px;color:#57606a}
.zwrap{position:relative;display:inline-block;line-height:0;outline:1px solid #d0d7de}
.zwrap img{display:block;max-width:200px;max-height:160px}
.zwrap svg{position:absolute;left:0;top:0;width:100%;height:100%;overflow:visible;pointer-events:none}
.imgs img.returned{max-width:120px;max-height:120px}
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

function picture(id, testid, label, cls) {  // an embedded image, or a placeholder saying why it is not there
  const im = DATA.images[id], name = (label ? label + ": " : "") + (im ? im.path : id);
  if (im && im.src) return el("img", cls, null, {src: im.src, alt: im.path, title: label ? name : im.path, "data-testid": testid});
  return el("div", "missing", (im ? im.error : "missing image") + ": " + name, {"data-testid": testid + "-missing"});
}

function zoom(b) {  // the pixel box a zoom_in cropped, drawn over the image it cropped (an SVG in its pixel units)
  const f = el("figure", "zoom", null, {"data-testid": "zoom", "data-image": b.image}), im = DATA.images[b.image];
  const caption = el("figcaption", null, "image " + b.index + " at [" + b.px.join(", ") + "] (pixels)");
  if (!(im && im.src && im.w && im.h)) { f.append(picture(b.image, "zoom-image", "image " + b.index), caption); return f; }
  const wrap = el("div", "zwrap"), NS = document.querySelector("svg.curve").namespaceURI;  // SVG's (the page names no URL)
  const svg = document.createElementNS(NS, "svg"), r = document.createElementNS(NS, "rect");
  for (const [k, v] of Object.entries({viewBox: "0 0 " + im.w + " " + im.h, preserveAspectRatio: "none", "data-testid": "zoom-box"}))
    svg.setAttribute(k, v);
  const [x1, y1, x2, y2] = b.px.map(Number);
  for (const [k, v] of Object.entries({x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: "rgba(207,34,46,0.12)",
    stroke: "#cf222e", "stroke-width": 2, "vector-effect": "non-scaling-stroke", "data-testid": "zoom-rect"})) r.setAttribute(k, v);
  svg.append(r);
  wrap.append(picture(b.image, "zoom-image", "image " + b.index), svg);
  f.append(wrap, caption);
  return f;
}

function call(x) {
  const failed = x.error !== null && x.error !== undefined;
  const d = el("div", "call" + (failed ? " failed" : ""), null, {"data-testid": "call", "data-failed": failed, "data-name": x.name === null ? "" : x.name});
  d.append(el("code", "cname", x.name === null ? "(unreadable call)" : x.name, {"data-testid": "call-name"}));
  if (x.arguments !== null && x.arguments !== undefined) d.append(el("code", null, JSON.stringify(x.arguments), {"data-testid": "call-args"}));
  if (failed) d.append(document.createTextNode(" "), el("span", "badge b-incorrect", "error: " + x.error, {"data-testid": "call-error"}));
  if (x.box) d.append(zoom(x.box));
  return d;
}

function turn(u) {
  const li = el("li", "turn" + (u.role === "tool" ? " tool" : ""), null, {"data-testid": "turn", "data-role": u.role});
  li.append(el("div", "role", u.role), el("pre", null, u.text, {"data-testid": "turn-text"}));
  for (const x of u.calls || []) li.append(call(x));
  if (u.images && u.images.length) {
    const imgs = el("div", "imgs");
    u.images.forEach((id, j) => imgs.append(picture(id, "tool-image", "image " + (u.first + j), "returned")));
    li.append(imgs);
  }
  return li;
}

function trajectory(t) {
  const calls = t.turns.flatMap(u => u.calls || []).concat(t.calls || []);
  const failed = calls.filter(x => x.error !== null && x.error !== undefined).length;
  const images = t.turns.reduce((n, u) => n + (u.images ? u.images.length : 0), 0);
  const plural = (n, w) => n + " " + w + (n === 1 ? "" : "s");
  const box = el("details", "traj", null, {open: "", "data-testid": "trajectory"});
  box.append(el("summary", null, "trajectory · " + plural(t.turns.filter(u => u.role === "assistant").length, "assistant turn") +
    " · " + plural(calls.length, "tool call") + (failed ? " (" + failed + " failed)" : "") + " · " +
    plural(images, "image") + " returned · ended: " + (t.end === null ? "(not recorded)" : t.end)));
  const ol = el("ol", "turns");
  for (const u of t.turns) ol.append(turn(u));
  box.append(ol);
  if (t.calls && t.calls.length) {  // calls the page could not match to the turns that made them
    box.append(el("div", "meta", "tool calls"));
    for (const x of t.calls) box.append(call(x));
  }
  return box;
}

function card(c) {
  const d = el("div", "card " + (c.correct ? "ok" : "bad") + (c.trajectory ? " traj" : ""), null, {"data-testid": "completion",
    "data-correct": c.correct, "data-truncated": c.truncated, "data-index": c.index});
  d._c = c;
  const badges = el("div", "badges");
  badges.append(el("span", "badge", "#" + c.index));
  badges.append(c.correct ? el("span", "badge b-correct", "correct") : el("span", "badge b-incorrect", "incorrect"));
  if (c.truncated) badges.append(el("span", "badge b-truncated", "truncated"));
  badges.append(c.kept ? el("span", "badge", "kept") : el("span", "badge b-dropped", "dropped by filter"));
  if (c.trajectory && c.trajectory.end !== null)
    badges.append(el("span", "badge b-end" + (c.trajectory.end === "answer" ? "" : " limit"), "end: " + c.trajectory.end, {"data-testid": "end"}));
  d.append(badges, el("pre", null, c.text, {"data-testid": "completion-text"}));
  d.append(kv("extracted", c.extracted === null ? "(none)" : c.extracted));
  const comps = Object.entries(c.components).map(([k, v]) => k + " " + num(v)).join(" \u00b7 ");
  d.append(kv("reward", num(c.reward) + (comps ? "  (" + comps + ")" : "")));
  d.append(kv("advantage", c.advantage === null ? "\u2014 (not trained)" : num(c.advantage, true)));
  if (c.length !== null && c.length !== undefined) d.append(kv("tokens", c.length));
  if (c.trajectory) d.append(trajectory(c.trajectory));
  return d;
}

function group(g) {
  const s = el("section", "group" + (g.kept ? "" : " dropped"), null, {"data-testid": "group", "data-sample-id": g.sample_id});
  const head = el("div", "ghead"), imgs = el("div", "imgs"), info = el("div");
  for (const id of g.images) imgs.append(picture(id, "image"));
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
