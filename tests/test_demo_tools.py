"""The tools demo's gain lines under its table (no model needed; the gains themselves: tests/eval/test_records.py)."""

from mmrft.demo_tools import GAINS, gain_note


def test_gain_note_names_the_recipes():
    names = {"tools_sft": "(b) SFT with tools", "tools_grpo": "(c) SFT+GRPO with tools"}
    note = gain_note({"tools_sft->tools_grpo": {"points": 9.0, "low": 2.5, "high": 15.5, "n": 200}}, names)
    assert note == "\n(c) - (b): +9.0 points (95 % paired bootstrap interval +2.5 to +15.5, 200 items)"


def test_the_demo_reports_grpos_gain_and_the_tools_gain():
    assert GAINS == (("tools_sft", "tools_grpo"), ("no_tools", "tools_grpo"))
