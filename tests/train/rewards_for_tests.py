"""A user reward loaded by import path in tests: varies for any text, so advantages are never all zero."""


def shorter_is_better(completion: str, sample: dict) -> float:
    return -min(len(completion), 100) / 100.0


def flat_for_even_ids(completion: str, sample: dict) -> float:
    """0 for samples with an even trailing id number (a zero-variance group), length-based otherwise."""
    if int(sample["id"].rsplit("-", 1)[-1]) % 2 == 0:
        return 0.0
    return -min(len(completion), 100) / 100.0


def flat_on_rank_1(completion: str, sample: dict) -> float:
    """0 for every completion scored by the process of rank 1 under torchrun (all its groups have zero variance, so
    DAPO's filter drops them all); elsewhere a hash of the text, so two different completions score differently."""
    import os
    import zlib

    if os.environ.get("RANK") == "1":
        return 0.0
    return zlib.crc32(completion.encode()) / 2**32


def always_zero(completion: str, sample: dict) -> float:
    """Every completion scores 0: every group is flat (a collapsed policy, as far as the trainer can tell)."""
    return 0.0
