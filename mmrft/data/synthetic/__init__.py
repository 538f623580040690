"""Procedural multimodal tasks with verifiable answers (count, arithmetic, compare, ground).

Importing this package registers all tasks in :data:`SYNTHETIC_TASKS`.
"""

from .scene import BASE_IMAGE_SIZE, COLOURS, SHAPE_KINDS
from .base import (
    SYNTHETIC_TASKS,
    SyntheticItem,
    SyntheticTask,
    answer_text,
    generate_items,
    get_task,
    item_rng,
    item_to_row,
    register_task,
    task_corpus,
    TOKENIZER_TASKS,
    tokenizer_corpus,
    write_dataset,
)
from . import arithmetic, audio, compare, count, ground, multi_image, video, video_bounce, zoom  # noqa: F401
from .arithmetic import ArithmeticTask
from .compare import CompareTask
from .count import CountTask
from .ground import GroundTask

__all__ = [
    "BASE_IMAGE_SIZE",
    "COLOURS",
    "SHAPE_KINDS",
    "SYNTHETIC_TASKS",
    "ArithmeticTask",
    "CompareTask",
    "CountTask",
    "GroundTask",
    "SyntheticItem",
    "SyntheticTask",
    "answer_text",
    "generate_items",
    "get_task",
    "item_rng",
    "item_to_row",
    "register_task",
    "task_corpus",
    "TOKENIZER_TASKS",
    "tokenizer_corpus",
    "write_dataset",
]
