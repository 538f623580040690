"""Benchmark adapters: one module per benchmark, registered by name (see :mod:`mmrft.eval.benchmarks.base`)."""

from mmrft.eval.benchmarks.base import BENCHMARKS, Benchmark, Judgement, final_text, get_benchmark, register_benchmark
from mmrft.eval.benchmarks import (  # noqa: F401  (each module registers its adapters)
    chartqa,
    clevr,
    geometry3k,
    hrbench,
    mathverse,
    mathvision,
    mathvista,
    mmmu,
    mmstar,
    refcoco,
    synthetic,
    vstar,
)

__all__ = ["BENCHMARKS", "Benchmark", "Judgement", "final_text", "get_benchmark", "register_benchmark"]
