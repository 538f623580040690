"""A user reward loaded by import path in tests: varies for any text, so advantages are never all zero."""


def shorter_is_better(completion: str, sample: dict) -> float:
    return -min(len(completion), 100) / 100.0


def flat_for_even_ids(completion: str, sample: dict) -> float:
    """0 for samples with an even trailing id number (a zero-variance group), length-based otherwise."""
    if int(sample["id"].rsplit("-", 1)[-1]) % 2 == 0:
        return 0.0
    return -min(len(completion), 100) / 100.0
