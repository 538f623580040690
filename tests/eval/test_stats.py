import math
from fractions import Fraction

import numpy as np
import pytest

from mmrft.eval import stats
from mmrft.eval.stats import BootstrapResult, accuracy_by_category, majority_vote, paired_bootstrap, pass_at_k

# ---------------------------------------------------------------- pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 5, 11 / 12),  # 1 - C(7,5)/C(10,5) = 1 - 21/252
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (6, 2, 3, 0.8),  # 1 - C(4,3)/C(6,3) = 1 - 4/20
        (10, 3, 1, 0.3),  # k=1 -> c/n
        (7, 0, 3, 0.0),  # no correct sample
        (7, 7, 3, 1.0),  # all correct
        (5, 3, 3, 1.0),  # n-c=2 < k=3: every 3-subset has a correct one
        (5, 2, 5, 1.0),  # k = n, c > 0
        (5, 0, 5, 0.0),  # k = n, c = 0
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n, c", [(1, 0), (1, 1), (16, 5), (100, 37), (1000, 1)])
def test_pass_at_1_is_fraction_correct(n, c):
    assert pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


@pytest.mark.parametrize("n, c, k", [(200, 10, 100), (200, 1, 50), (1000, 13, 10), (50, 25, 25)])
def test_pass_at_k_matches_exact_binomials(n, c, k):
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-10, abs=1e-12)


def test_pass_at_k_large_n_is_finite_and_monotone_in_k():
    vals = [pass_at_k(5000, 17, k) for k in (1, 10, 100, 1000)]
    assert all(0.0 <= v <= 1.0 for v in vals)
    assert vals == sorted(vals)
    assert isinstance(vals[0], float)


def test_pass_at_k_accepts_numpy_ints():
    assert pass_at_k(np.int64(5), np.int32(2), np.int64(2)) == pytest.approx(0.7)


@pytest.mark.parametrize(
    "n, c, k, match",
    [(3, 1, 4, "exceeds"), (5, 6, 2, r"\[0, n=5\]"), (5, -1, 2, r"\[0, n=5\]"), (5, 2, 0, "k must be >= 1")],
)
def test_pass_at_k_errors(n, c, k, match):
    with pytest.raises(ValueError, match=match):
        pass_at_k(n, c, k)


def test_pass_at_k_rejects_float_arguments():
    with pytest.raises(TypeError):
        pass_at_k(5.0, 2, 2)


# ---------------------------------------------------------------- majority_vote


def test_majority_vote_picks_most_frequent_with_its_score():
    assert majority_vote(["3", "4", "4", "5"], [0.0, 1.0, 1.0, 0.0]) == ("4", 1.0)


def test_majority_vote_tie_broken_by_first_occurrence():
    assert majority_vote(["b", "a", "a", "b"], [0.0, 1.0, 1.0, 0.0]) == ("b", 0.0)
    assert majority_vote(["a", "b", "b", "a"], [1.0, 0.0, 0.0, 1.0]) == ("a", 1.0)
    assert majority_vote(["x", "y", "z"], [0.2, 0.5, 0.9]) == ("x", 0.2)


def test_majority_vote_ignores_none():
    # None appears 3 times but never wins.
    assert majority_vote([None, None, "7", None], [0.0, 0.0, 1.0, 0.0]) == ("7", 1.0)
    assert majority_vote([None, "1", "2", "2", None], [0.0, 0.0, 1.0, 1.0, 0.0]) == ("2", 1.0)


def test_majority_vote_takes_score_of_first_sample_with_winner():
    assert majority_vote(["q", "p", "p"], [0.0, 0.25, 0.75]) == ("p", 0.25)


def test_majority_vote_all_none_or_empty():
    assert majority_vote([None, None], [1.0, 1.0]) == (None, 0.0)
    assert majority_vote([], []) == (None, 0.0)


def test_majority_vote_length_mismatch():
    with pytest.raises(ValueError, match="2 answers but 1 scores"):
        majority_vote(["a", "b"], [1.0])


def test_majority_vote_score_is_float():
    answer, score = majority_vote(["a"], [1])
    assert answer == "a" and isinstance(score, float)


# ---------------------------------------------------------------- paired_bootstrap


def test_bootstrap_identical_runs():
    a = [0.0, 1.0, 1.0, 0.0, 0.5, 1.0]
    r = paired_bootstrap(a, list(a), n_resamples=500)
    assert isinstance(r, BootstrapResult)
    assert (r.delta, r.low, r.high) == (0.0, 0.0, 0.0)
    assert r.p_value == 1.0
    assert (r.n_items, r.n_resamples, r.confidence) == (6, 500, 0.95)


def test_bootstrap_constant_shift_all_wrong_to_all_right():
    r = paired_bootstrap([0.0] * 20, [1.0] * 20, n_resamples=1000)
    assert (r.delta, r.low, r.high) == (1.0, 1.0, 1.0)
    assert r.p_value == pytest.approx(1 / 1001)  # no resample reaches the null: the minimum p


def test_bootstrap_sign_is_b_minus_a():
    r = paired_bootstrap([1.0] * 5, [0.0] * 5, n_resamples=100)
    assert (r.delta, r.low, r.high) == (-1.0, -1.0, -1.0)


def test_bootstrap_two_items_enumeration():
    # d = b - a = [0, 1]. The 4 equally likely index pairs give resampled deltas 0, .5, .5, 1 (p = 1/4, 1/2, 1/4).
    # 2.5%/97.5% quantiles: 0 and 1. p-value: |delta* - .5| >= .5 iff delta* in {0, 1}: probability 1/2.
    r = paired_bootstrap([0.0, 0.0], [0.0, 1.0], n_resamples=20000, seed=1)
    assert r.delta == 0.5
    assert (r.low, r.high) == (0.0, 1.0)
    assert r.p_value == pytest.approx(0.5, abs=0.02)


def test_bootstrap_three_items_enumeration():
    # d = [0, 0, 1]: resampled delta = K/3 with K ~ Binomial(3, 1/3):
    # P(0) = 8/27 = .296, P(1/3) = 12/27, P(2/3) = 6/27, P(1) = 1/27 = .037 -> CDF(2/3) = 26/27 = .963.
    a, b = [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    r95 = paired_bootstrap(a, b, n_resamples=20000, confidence=0.95)  # upper quantile .975 > .963 -> 1
    assert r95.delta == pytest.approx(1 / 3)
    assert (r95.low, r95.high) == (0.0, 1.0)
    r90 = paired_bootstrap(a, b, n_resamples=20000, confidence=0.90)  # upper quantile .95 in (.704, .963) -> 2/3
    assert (r90.low, r90.high) == (0.0, pytest.approx(2 / 3))
    # p: |K/3 - 1/3| >= 1/3 iff K in {0, 2, 3}: (8 + 6 + 1)/27 = 15/27
    assert r95.p_value == pytest.approx(15 / 27, abs=0.02)


def test_bootstrap_ci_contains_delta_and_shrinks_with_more_items():
    rng = np.random.default_rng(123)
    widths = []
    for n in (50, 2000):
        a = (rng.random(n) < 0.5).astype(float)
        b = (rng.random(n) < 0.6).astype(float)
        r = paired_bootstrap(a, b, n_resamples=2000)
        assert r.low <= r.delta <= r.high
        assert r.delta == pytest.approx(b.mean() - a.mean())
        widths.append(r.high - r.low)
    assert widths[1] < widths[0] / 3  # width ~ 1/sqrt(n): ratio sqrt(40) ~ 6.3


def test_bootstrap_higher_confidence_gives_wider_interval():
    rng = np.random.default_rng(7)
    a, b = rng.random(200), rng.random(200)
    r80 = paired_bootstrap(a, b, n_resamples=3000, confidence=0.80)
    r99 = paired_bootstrap(a, b, n_resamples=3000, confidence=0.99)
    assert r99.low < r80.low <= r80.high < r99.high


def test_bootstrap_p_value_small_for_clear_effect_large_for_none():
    rng = np.random.default_rng(0)
    a = (rng.random(500) < 0.4).astype(float)
    better = np.maximum(a, (rng.random(500) < 0.4).astype(float))  # b >= a everywhere, many improvements
    assert paired_bootstrap(a, better, n_resamples=2000).p_value < 0.01
    noise = rng.permutation(a)  # same mean, unrelated per item
    assert paired_bootstrap(a, noise, n_resamples=2000).p_value > 0.5


def test_bootstrap_deterministic_for_seed():
    rng = np.random.default_rng(5)
    a, b = rng.random(300), rng.random(300)
    r1 = paired_bootstrap(a, b, n_resamples=1000, seed=42)
    r2 = paired_bootstrap(list(a), list(b), n_resamples=1000, seed=42)
    assert r1 == r2
    r3 = paired_bootstrap(a, b, n_resamples=1000, seed=43)
    assert r3.delta == r1.delta and (r3.low, r3.high) != (r1.low, r1.high)


def test_bootstrap_small_chunks_still_correct(monkeypatch):
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 5)  # 2 resamples per chunk of 2 items, many chunks
    r = paired_bootstrap([0.0, 0.0], [0.0, 1.0], n_resamples=5001, seed=3)
    assert (r.delta, r.low, r.high) == (0.5, 0.0, 1.0)
    assert r.p_value == pytest.approx(0.5, abs=0.03)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 1)  # fewer elements than items: still one resample per chunk
    assert paired_bootstrap([0.0] * 4, [1.0] * 4, n_resamples=10).low == 1.0


def test_bootstrap_single_item():
    r = paired_bootstrap([0.25], [0.75], n_resamples=50)
    assert (r.delta, r.low, r.high) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    "a, b, kwargs, match",
    [
        ([1.0, 0.0], [1.0], {}, "differ in length"),
        ([], [], {}, "no items"),
        ([1.0, float("nan")], [1.0, 0.0], {}, "finite"),
        ([1.0], [0.0], {"n_resamples": 0}, "n_resamples"),
        ([1.0], [0.0], {"confidence": 1.0}, "confidence"),
        ([1.0], [0.0], {"confidence": 0.0}, "confidence"),
    ],
)
def test_bootstrap_errors(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap(a, b, **kwargs)


# ---------------------------------------------------------------- accuracy_by_category


def _rec(score, **cats):
    return {"score": score, "categories": cats}


def test_accuracy_by_category_basic_and_sorted():
    records = [
        _rec(1.0, task="vqa", level="easy"),
        _rec(0.0, task="vqa", level="hard"),
        _rec(1.0, task="chart", level="easy"),
        _rec(0.5, task="vqa"),  # no level -> "(none)"
    ]
    out = accuracy_by_category(records, ["task", "level"])
    assert out == {
        "level": {
            "(none)": {"n": 1, "accuracy": 0.5},
            "easy": {"n": 2, "accuracy": 1.0},
            "hard": {"n": 1, "accuracy": 0.0},
        },
        "task": {"chart": {"n": 1, "accuracy": 1.0}, "vqa": {"n": 3, "accuracy": 0.5}},
    }
    assert list(out) == ["level", "task"]
    assert list(out["level"]) == ["(none)", "easy", "hard"]


def test_accuracy_by_category_list_values_count_under_each():
    records = [
        _rec(1.0, skill=["ocr", "math"]),
        _rec(0.0, skill=["math"]),
        _rec(1.0, skill=["ocr", "ocr"]),  # duplicates count once
        _rec(0.0, skill=[]),  # empty list -> "(none)"
    ]
    out = accuracy_by_category(records, ["skill"])
    assert out == {
        "skill": {
            "(none)": {"n": 1, "accuracy": 0.0},
            "math": {"n": 2, "accuracy": 0.5},
            "ocr": {"n": 2, "accuracy": 1.0},
        }
    }


def test_accuracy_by_category_missing_categories_dict_and_none_value():
    records = [{"score": 1.0}, {"score": 0.0, "categories": {"task": None}}, _rec(1, task="a")]
    out = accuracy_by_category(records, ["task"])
    assert out == {"task": {"(none)": {"n": 2, "accuracy": 0.5}, "a": {"n": 1, "accuracy": 1.0}}}
    assert isinstance(out["task"]["a"]["n"], int) and isinstance(out["task"]["a"]["accuracy"], float)


def test_accuracy_by_category_accepts_generator_and_empty():
    gen = (_rec(float(i % 2), split="x") for i in range(4))
    assert accuracy_by_category(gen, ["split"]) == {"split": {"x": {"n": 4, "accuracy": 0.5}}}
    assert accuracy_by_category([], ["split", "task"]) == {"split": {}, "task": {}}
    assert accuracy_by_category([_rec(1.0, task="a")], []) == {}


def test_accuracy_by_category_missing_score():
    with pytest.raises(ValueError, match="record 1 has no 'score'"):
        accuracy_by_category([_rec(1.0, task="a"), {"categories": {"task": "a"}}], ["task"])
