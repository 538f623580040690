"""A user reward loaded by import path in tests: varies for any text, so advantages are never all zero."""


def shorter_is_better(completion: str, sample: dict) -> float:
    return -min(len(completion), 100) / 100.0
