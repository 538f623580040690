"""The bound hostile-input tests put on a grader call.

It guards against hangs and quadratic blow-ups on adversarial inputs (which take minutes or forever), not speed:
graders finish these inputs in milliseconds on an idle machine, and a loaded CI machine may be 10x slower.
Grading speed is measured by benchmarks/reward_throughput.py.
"""

HANG_GUARD_S = 15.0
