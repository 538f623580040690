"""RefCOCO / RefCOCO+ / RefCOCOg referring expression comprehension, Acc@IoU 0.5, from the lmms-lab parquet release.

Official files followed:

* Data: the lmms-lab parquet releases ``lmms-lab/RefCOCO`` (splits val / test / testA / testB), ``lmms-lab/RefCOCOplus``
  (val / testA / testB) and ``lmms-lab/RefCOCOg`` (val / test); dataset card features ``question_id`` (str),
  ``image`` (HF Image: ``{bytes, path}``), ``question`` (str), ``answer`` (list of str), ``segmentation`` (list of
  float), ``bbox`` (list of float, COCO ``[x, y, w, h]`` pixels), ``iscrowd`` (int8), ``file_name`` (str); files
  ``data/<split>-NNNNN-of-NNNNN.parquet``. ``question`` is a fixed region-captioning instruction; the referring
  expressions are the ``answer`` list.
* Evaluation: EvolvingLMMs-Lab/lmms-eval ``lmms_eval/tasks/refcoco/utils_rec.py`` (``refcoco_bbox_rec`` tasks): one
  sample per referring expression (``explode_answers``), gold ``[x, y, x + w, y + h]``, the first
  ``[a, b, c, d]`` of the output, ``ACC@0.5`` = IoU >= 0.5 with continuous (not +1-pixel) box areas.
* Prompts: ``box_format="pixels"`` / ``"norm1000"`` use the Qwen grounding prompt of the Qwen2.5-VL cookbook
  ("Locate <expr>, output its bbox coordinates using JSON format."; Qwen2.5-VL answers in absolute pixels,
  Qwen2-VL / Qwen3-VL in 0-1000); ``"norm1"`` uses lmms-eval's ``refcoco_bbox_rec_doc_to_text`` prompt (0-1 floats).

The original ``refs(unc).p`` annotation files are Python pickles: they are never read here (no pickle); only the
parquet release is supported.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, ClassVar, Optional

from mmrft.data.schema import Sample
from mmrft.errors import ConfigError, DataError
from mmrft.eval.benchmarks.base import read_parquet
from mmrft.eval.benchmarks.base import Benchmark, Judgement, final_text, register_benchmark
from mmrft.rewards.extract import answer_block
from mmrft.rewards.grounding import box_iou, parse_box, to_pixels

__all__ = ["RefCOCOFamily", "RefCOCO", "RefCOCOPlus", "RefCOCOg", "BOX_FORMATS"]

# user-facing name -> mmrft.rewards.grounding convention name
BOX_FORMATS = {"pixels": "pixel", "pixel": "pixel", "norm1000": "norm1000", "norm1": "norm1"}
IOU_THRESHOLD = 0.5
_COLUMNS = ("question_id", "image", "answer", "bbox")

QWEN_PROMPT = "Locate {expr}, output its bbox coordinates using JSON format."
LMMS_EVAL_PROMPT = (
    "Bounding box coordinates are specified in the format (top-left x, top-left y, bottom-right x, bottom-right y). "
    "All values are floating point numbers bounded between 0 and 1. Please provide the bounding box coordinate of "
    "the region this sentence describes: {expr}"
)


def _fmt(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def format_box(box: Any) -> str:
    """Canonical pixel box string, at most two decimals: ``[40, 20, 140.25, 80]``."""
    return "[" + ", ".join(_fmt(float(v)) for v in box) + "]"


def _reasoning_truncated(completion: str) -> bool:
    """``<think>`` opened, never closed, no ``<answer>``: truncated mid-reasoning (its boxes are not the answer)."""
    low = completion.lower()
    return "<think>" in low and "</think>" not in low and answer_block(completion) is None


def _image_size(ref: Any) -> Optional[tuple[int, int]]:
    """(width, height) from the image header only (PIL opens lazily), or None if unreadable."""
    from PIL import Image

    try:
        src: Any = ref
        if isinstance(ref, dict):
            src = io.BytesIO(ref["bytes"]) if ref.get("bytes") else ref.get("path")
        if src is None:
            return None
        with Image.open(src) as im:
            return im.size
    except Exception:
        return None


class RefCOCOFamily(Benchmark):
    """Shared loader/judge; subclasses set the title, source, splits and default split."""

    categories = ("split",)
    splits: ClassVar[tuple[str, ...]] = ()
    hf_id: ClassVar[str] = ""
    deviations = (
        "Same sample set (one per referring expression), gold box and Acc@IoU>=0.5 as lmms-eval refcoco_bbox_rec. "
        "Differences: the box is read from final_text (the <answer> block / text after </think>) with "
        "mmrft.rewards.grounding.parse_box (bbox_2d key, [a,b,c,d], (x1,y1),(x2,y2), or exactly four numbers; "
        "lmms-eval: first [a,b,c,d] of the whole output, else [0,0,0,0]); an output cut off inside an unclosed "
        "<think> scores 0; the coordinate convention is the box_format option (pixels | norm1000 | norm1, "
        "lmms-eval assumes norm1); 'pixels' are pixels of the original image, so a model fed a resized image "
        "must answer in original-image pixels or use a normalised format; no clipping to the image (as "
        "lmms-eval). The pickle annotations (refs(unc).p) are not supported, only the lmms-lab parquet release."
    )

    def __init__(self, box_format: str = "pixels") -> None:
        if box_format not in BOX_FORMATS:
            raise ConfigError(f"{self.name}: unknown box_format {box_format!r}; expected pixels, norm1000 or norm1")
        self.box_format = "pixels" if box_format == "pixel" else box_format
        self._convention = BOX_FORMATS[box_format]
        self._prompt = LMMS_EVAL_PROMPT if self._convention == "norm1" else QWEN_PROMPT
        self._sizes: dict[str, Optional[tuple[int, int]]] = {}

    # ------------------------------------------------------------------ load

    def _files(self, data_dir: Path, split: str) -> list[Path]:
        if split not in self.splits:
            raise DataError(f"{self.name}: unknown split {split!r}; {self.hf_id} has {', '.join(self.splits)}")
        files = sorted((data_dir / "data").glob(f"{split}-*.parquet")) or sorted(data_dir.glob(f"{split}-*.parquet"))
        if not files:
            found = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*.parquet"))
            raise DataError(f"{data_dir}: no {split}-*.parquet under data/ for split {split!r} "
                            f"(parquet files found: {', '.join(found) or 'none'})")
        return files

    def load(self, data_dir: Path, split: Optional[str] = None) -> list[Sample]:
        """One sample per referring expression; ``split`` may list several: ``"testA,testB"``."""
        data_dir = Path(data_dir)
        names = [s.strip() for s in (split or self.default_split or "").split(",") if s.strip()]
        samples: list[Sample] = []
        seen: set[str] = set()
        for name in names:
            for path in self._files(data_dir, name):
                for sample in self._load_file(path, name):
                    if sample.id in seen:
                        raise DataError(f"{sample.source}: duplicate sample id {sample.id}")
                    seen.add(sample.id)
                    samples.append(sample)
        if not samples:
            raise DataError(f"{data_dir}: split {split!r} has no referring expressions")
        return samples

    def _load_file(self, path: Path, split: str) -> list[Sample]:
        import pyarrow.parquet as pq

        try:
            schema_names = set(pq.read_schema(path).names)
            missing = [c for c in _COLUMNS if c not in schema_names]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing} (columns: {sorted(schema_names)})")
            cols = [c for c in (*_COLUMNS, "file_name", "iscrowd") if c in schema_names]
            rows = read_parquet(path, columns=cols)
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"{path}: cannot read parquet: {e}") from None
        out: list[Sample] = []
        for i, row in enumerate(rows):
            where = f"{path}:row {i}"
            qid = row["question_id"]
            if qid is None or not str(qid).strip():
                raise DataError(f"{where}: field 'question_id': expected a non-empty id")
            bbox = row["bbox"]
            if (not isinstance(bbox, list) or len(bbox) != 4
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
                raise DataError(f"{where}: field 'bbox': expected [x, y, w, h] (four finite numbers), got {bbox!r}")
            x, y, w, h = (float(v) for v in bbox)
            if w <= 0 or h <= 0:
                raise DataError(f"{where}: field 'bbox': width and height must be positive, got {bbox!r}")
            exprs = row["answer"]
            if not isinstance(exprs, list) or not all(isinstance(e, str) for e in exprs):
                raise DataError(f"{where}: field 'answer': expected a list of referring expressions")
            image = row["image"]
            if not isinstance(image, dict) or not (image.get("bytes") or image.get("path")):
                raise DataError(f"{where}: field 'image': expected an embedded image {{'bytes', 'path'}}")
            ref = ({"bytes": image["bytes"], "path": image.get("path")} if image.get("bytes")
                   else str((path.parent / image["path"]).resolve()))
            for k, expr in enumerate(exprs):
                if not expr.strip():
                    continue
                out.append(Sample(
                    id=f"{qid}_{k}",
                    prompt=self._prompt.format(expr=expr.strip()),
                    answer=[x, y, x + w, y + h],
                    images=[ref],
                    task=self.name,
                    metadata={
                        "categories": {"split": split},
                        "question_id": str(qid),
                        "expression": expr.strip(),
                        "file_name": row.get("file_name"),
                        "iscrowd": row.get("iscrowd"),
                        "bbox_xywh": [x, y, w, h],
                        "box_format": self._convention,
                        "iou_threshold": IOU_THRESHOLD,
                    },
                    source=where,
                ))
        return out

    # ------------------------------------------------------------------ judge

    def _size(self, sample: Sample) -> Optional[tuple[float, float]]:
        size = sample.metadata.get("image_size")
        if isinstance(size, (list, tuple)) and len(size) == 2:
            return float(size[0]), float(size[1])
        if sample.id not in self._sizes:
            self._sizes[sample.id] = _image_size(sample.images[0]) if sample.images else None
        return self._sizes[sample.id]

    def judge(self, completion: str, sample: Sample) -> Judgement:
        try:
            if _reasoning_truncated(completion):
                return Judgement(None, 0.0)
            box = parse_box(final_text(completion))
            if box is None:
                return Judgement(None, 0.0)
            size = None if self._convention == "pixel" else self._size(sample)
            if self._convention != "pixel" and size is None:
                return Judgement(None, 0.0)  # unreadable image: cannot convert (the runner reports the image)
            pixels = to_pixels(box, self._convention, size)
            if not all(math.isfinite(v) for v in pixels):
                return Judgement(None, 0.0)
            iou = box_iou(pixels, sample.answer)
            return Judgement(format_box(pixels), 1.0 if iou >= IOU_THRESHOLD else 0.0)
        except Exception:
            return Judgement(None, 0.0)


@register_benchmark("refcoco")
class RefCOCO(RefCOCOFamily):
    title = "RefCOCO (val)"
    hf_id = "lmms-lab/RefCOCO"
    source = "https://huggingface.co/datasets/lmms-lab/RefCOCO (data/<split>-*.parquet; COCO train2014 images embedded)"
    layout = "DIR/data/<split>-NNNNN-of-NNNNN.parquet, split in val | test | testA | testB"
    splits = ("val", "test", "testA", "testB")
    default_split = "val"


@register_benchmark("refcoco+")
class RefCOCOPlus(RefCOCOFamily):
    title = "RefCOCO+ (val)"
    hf_id = "lmms-lab/RefCOCOplus"
    source = "https://huggingface.co/datasets/lmms-lab/RefCOCOplus (data/<split>-*.parquet)"
    layout = "DIR/data/<split>-NNNNN-of-NNNNN.parquet, split in val | testA | testB"
    splits = ("val", "testA", "testB")
    default_split = "val"


@register_benchmark("refcocog")
class RefCOCOg(RefCOCOFamily):
    title = "RefCOCOg (val)"
    hf_id = "lmms-lab/RefCOCOg"
    source = "https://huggingface.co/datasets/lmms-lab/RefCOCOg (data/<split>-*.parquet)"
    layout = "DIR/data/<split>-NNNNN-of-NNNNN.parquet, split in val | test"
    splits = ("val", "test")
    default_split = "val"
