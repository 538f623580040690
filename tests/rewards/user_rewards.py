"""User-style rewards for the runner tests, referenced as "tests.rewards.user_rewards:<name>".

Each misbehaves only when the completion contains a trigger word, so one batch can
mix pathological and normal items.
"""

import os
import time


def half(completion, sample):
    """0.5 when the completion says "ok"."""
    return 0.5 if "ok" in completion else 0.0


def pid(completion, sample):
    """The grading process id, to prove where rewards run."""
    return float(os.getpid())


def sleepy(completion, sample):
    if "sleep" in completion:
        time.sleep(3600)
    return 1.0


def spin(completion, sample):
    if "spin" in completion:
        while True:
            pass
    return 1.0


def buggy(completion, sample):
    if "boom" in completion:
        raise RuntimeError("boom! bad reward")
    return 1.0


def stubborn(completion, sample):
    """Swallows every exception, including the runner's timeout: only the watchdog can stop it."""
    if "stubborn" in completion:
        while True:
            try:
                time.sleep(0.05)
            except BaseException:
                pass
    return 1.0


def crash(completion, sample):
    if "crash" in completion:
        os._exit(3)
    return 1.0


def not_a_number(completion, sample):
    return "high"


class Namespace:
    @staticmethod
    def nested(completion, sample):
        return 0.25
