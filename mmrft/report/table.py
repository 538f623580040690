"""Plain-text tables of held-out results."""

from __future__ import annotations


def comparison_table(before: dict, after: dict, name_a: str = "SFT", name_b: str = "SFT+GRPO") -> str:
    """`before`/`after`: task -> {"accuracy", "reward", "n"}. Accuracy in percent, reward as a mean."""
    rows = [("task", "n", f"{name_a} acc", f"{name_b} acc", "Δ acc", f"{name_a} reward", f"{name_b} reward")]
    for task in sorted(set(before) | set(after)):
        a, b = before.get(task, {}), after.get(task, {})
        acc_a, acc_b = 100 * a.get("accuracy", float("nan")), 100 * b.get("accuracy", float("nan"))
        rows.append((task, str(int(b.get("n", a.get("n", 0)))), f"{acc_a:.1f}%", f"{acc_b:.1f}%",
                     f"{acc_b - acc_a:+.1f}", f"{a.get('reward', float('nan')):.3f}", f"{b.get('reward', float('nan')):.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    out = [line(rows[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows[1:]]
    return "\n".join(out)
