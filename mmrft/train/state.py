"""Checkpoints that resume exactly: weights, optimizer and scheduler states, every RNG, the data position, counters.

A checkpoint is a directory `RUN/checkpoint-<step>/`, written to a temporary directory and renamed (a crash or a
full disk never leaves a half checkpoint under that name, and the previous checkpoint stays):

    policy/             the policy: `save_pretrained` (full weights, or only the LoRA adapter), safetensors
    critic/             PPO's critic, the same way, plus value_head.safetensors
    optimizers.pt       optimizer and LR-scheduler states (`torch.load(weights_only=True)` reads it back)
    rng.safetensors     torch's global RNG (and the CUDA device's), the trainer's generator
    rng_rank<R>.safetensors   the same for rank R of a multi-process run (ranks sample different numbers of tokens,
                        so their random streams differ)
    state.json          step, Python and NumPy RNG states (of every rank), the prompt sampler's position, counters,
                        the run-health alarms' streaks and baselines
    metrics.jsonl       the run's metrics up to this step
    manifest.json       every file's size and SHA-256, checked before a checkpoint is trusted

`latest_checkpoint` returns the newest checkpoint whose manifest matches, warning about each newer one that does
not (a corrupt or truncated checkpoint is skipped, never loaded). An old checkpoint is renamed to a temporary name
before it is deleted, so a kill never leaves one half deleted under its own name. Runs killed at random instants
resume bit-identically (docs/reliability.md, `benchmarks/crash_resume.py`).
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mmrft import atomic, faults
from mmrft.errors import MmrftError
from mmrft.models.value import VALUE_HEAD_FILE

log = logging.getLogger("mmrft")

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
MANIFEST = "manifest.json"


class CheckpointError(MmrftError):
    """A checkpoint could not be written or read."""


# ----------------------------------------------------------------------------- weights


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def save_weights(model, out: Path) -> None:
    """Full weights with `save_pretrained`, or only the adapter for a peft model (safetensors either way)."""
    model.save_pretrained(str(out), safe_serialization=True)


def load_weights(model, src: Path) -> None:
    """Load what `save_weights` wrote into `model` in place, every tensor bit for bit.

    Full models go through `from_pretrained` (transformers renames some keys between `state_dict` and the saved
    file, and knows how to undo it), then `load_state_dict(strict=True)`; peft adapters through
    `set_peft_model_state_dict`."""
    if _is_peft(model):
        from peft import set_peft_model_state_dict

        path = src / "adapter_model.safetensors"
        if not path.is_file():
            raise CheckpointError(f"{src}: no adapter_model.safetensors to load")
        result = set_peft_model_state_dict(model, load_file(str(path)))
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise CheckpointError(f"{src}: adapter tensors the model does not have: {unexpected[:5]}")
        return
    if not any(src.glob("*.safetensors")):
        raise CheckpointError(f"{src}: no weights (*.safetensors) to load")
    dtype = next(model.parameters()).dtype
    fresh = type(model).from_pretrained(str(src), dtype=dtype)
    try:
        model.load_state_dict(fresh.state_dict(), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{src}: weights do not fit the model: {str(e).splitlines()[0]}") from None


def save_critic_weights(critic, out: Path) -> None:
    """A critic (`mmrft.models.value.ValueModel`, or a view with `backbone` and `value_head`) as `save_weights` writes
    its backbone, plus its value head."""
    save_weights(critic.backbone, out)
    save_file({k: v.detach().cpu().contiguous() for k, v in critic.value_head.state_dict().items()},
              str(out / VALUE_HEAD_FILE))


def load_critic_weights(critic, src: Path) -> None:
    """What `save_critic_weights` wrote into a critic, in place."""
    load_weights(critic.backbone, src)
    critic.value_head.load_state_dict(load_file(str(src / VALUE_HEAD_FILE)))


# ----------------------------------------------------------------------------- RNG


def rng_state(generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors for safetensors, JSON-able states) of every random source the trainer draws from."""
    py = random.getstate()
    npy = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():  # sampling on a GPU draws from the device's generator
        tensors["cuda"] = torch.cuda.get_rng_state()
    plain = {"python": [py[0], list(py[1]), py[2]],
             "numpy": [npy[0], npy[1].tolist(), int(npy[2]), int(npy[3]), float(npy[4])]}
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(tensors["torch"])
    generator.set_state(tensors["generator"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    py = plain["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = plain["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))


# ----------------------------------------------------------------------------- checkpoint directories


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_manifest(root: Path) -> None:
    files = {str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}
    atomic.write_text(root / MANIFEST, json.dumps({"files": files}, indent=1))


def verify_checkpoint(path: Path) -> Optional[str]:
    """None when every file listed in the manifest is present with its size and hash, else what is wrong."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return "no manifest.json (incomplete checkpoint)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as e:
        return f"unreadable manifest.json: {e}"
    for rel, meta in files.items():
        f = path / rel
        if not f.is_file():
            return f"missing file {rel}"
        if f.stat().st_size != meta["bytes"] or _sha256(f) != meta["sha256"]:
            return f"file {rel} does not match its manifest (corrupt or truncated)"
    return None


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint directory in the run, oldest first."""
    out = []
    for p in Path(run_dir).iterdir() if Path(run_dir).is_dir() else []:
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest checkpoint that verifies; each newer broken one is reported and skipped."""
    for step, path in reversed(list_checkpoints(run_dir)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        log.warning("checkpoint %s is unusable (%s); falling back to an older one", path, problem)
    return None


def save_checkpoint(run_dir: Path, step: int, parts: dict[str, Any], state: dict[str, Any],
                    keep_last: int = 2) -> Path:
    """Write `RUN/checkpoint-<step>` atomically and keep only the newest `keep_last` (>= 1) checkpoints.

    `parts`: ``policy`` (model), optional ``critic`` (ValueModel), ``optimizers`` (name -> object with
    `state_dict`), ``generator``, and with several processes ``rank_rng``: the `rng_state` of ranks 1, 2, ...
    (rank 0's is this process's). `state`: JSON-able counters and positions, stored in state.json.
    """
    out = Path(run_dir) / f"checkpoint-{step:06d}"
    try:
        with atomic.directory(out) as tmp:
            save_weights(parts["policy"], tmp / "policy")
            faults.point("checkpoint_write")  # a test hook (mmrft.faults); nothing unless MMRFT_FAULT_POINT says so
            if parts.get("critic") is not None:
                save_critic_weights(parts["critic"], tmp / "critic")
            torch.save({k: v.state_dict() for k, v in parts["optimizers"].items()}, tmp / "optimizers.pt")
            tensors, plain = rng_state(parts["generator"])
            save_file(tensors, str(tmp / "rng.safetensors"))
            rank_plain = {}
            for rank, (t, p) in enumerate(parts.get("rank_rng") or [], start=1):
                save_file(t, str(tmp / f"rng_rank{rank}.safetensors"))
                rank_plain[str(rank)] = p
            atomic.write_text(tmp / "state.json", json.dumps({"step": step, "rng": plain, "rng_ranks": rank_plain,
                                                              **state}))
            metrics = Path(run_dir) / "metrics.jsonl"
            if metrics.is_file():  # the metrics so far: a resumed run restarts its log from this copy
                shutil.copyfile(metrics, tmp / "metrics.jsonl")
            _write_manifest(tmp)
    except (OSError, RuntimeError, SafetensorError) as e:  # a full disk: OSError, or torch's / safetensors' own
        raise CheckpointError(_write_failure(Path(run_dir), out, e)) from e
    for _, old in list_checkpoints(run_dir)[: -max(keep_last, 1)]:
        doomed = old.with_name(f".{old.name}.tmp-deleted-{os.getpid()}")  # gone at once; a kill mid-way leaves a
        try:  # temporary name (`atomic.remove_leftovers`), never a checkpoint missing half its files
            os.replace(old, doomed)
        except OSError:
            doomed = old
        shutil.rmtree(doomed, ignore_errors=True)
    return out


def _write_failure(run_dir: Path, out: Path, e: BaseException) -> str:
    """Why writing `out` failed, in words; a full disk is named even where torch reports it as a bare write error."""
    what = (e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[0] if str(e).strip()
            else type(e).__name__)
    previous = [p for _, p in list_checkpoints(run_dir) if p != out]
    full = (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left" in str(e)
    if not full and previous:  # torch.save says "unexpected pos ..." when the disk fills under it
        need = sum(f.stat().st_size for f in previous[-1].rglob("*") if f.is_file())
        free = shutil.disk_usage(run_dir).free
        if free < need:
            what += (f" ({os.strerror(errno.ENOSPC)}: {free / 2**20:.1f} MiB free there, a checkpoint takes "
                     f"{need / 2**20:.1f} MiB)")
    kept = f"; the previous checkpoint {previous[-1]} is intact" if previous else ""
    return f"cannot write checkpoint {out}: {what}{kept}"


def load_checkpoint(path: Path, parts: dict[str, Any], rank: int = 0) -> dict[str, Any]:
    """Restore `parts` (as for `save_checkpoint`) in place from `path`; returns state.json's content. `rank`: whose
    random state to restore (a rank the checkpoint has none for, after a change of world size, takes rank 0's: a
    valid continuation, not a bit-identical one)."""
    problem = verify_checkpoint(path)
    if problem is not None:
        raise CheckpointError(f"{path}: {problem}")
    if parts.get("policy") is not None:  # None: loaded already (FSDP loads the weights before sharding)
        load_weights(parts["policy"], path / "policy")
    if parts.get("critic") is not None:  # None: none, or loaded already (FSDP, as the policy)
        load_critic_weights(parts["critic"], path / "critic")
    saved = torch.load(path / "optimizers.pt", weights_only=True, map_location="cpu")
    for name, obj in parts["optimizers"].items():
        if name not in saved:
            raise CheckpointError(f"{path}: no state for {name} (was it saved by a different algorithm?)")
        obj.load_state_dict(saved[name])
    state = json.loads((path / "state.json").read_text())
    own = state.get("rng_ranks", {}).get(str(rank))
    if rank and own is not None:
        set_rng_state(load_file(str(path / f"rng_rank{rank}.safetensors")), own, parts["generator"])
    else:
        if rank:
            log.warning("%s holds no random state for rank %d (saved with fewer processes): using rank 0's", path,
                        rank)
        set_rng_state(load_file(str(path / "rng.safetensors")), state["rng"], parts["generator"])
    return state


def save_model(model, processor, out: Path, extra_files: Optional[dict[str, str]] = None) -> Path:
    """Write a checkpoint that `from_pretrained` loads (LoRA adapters merged into a copy), atomically, with
    `extra_files` (file name -> text) in the same directory."""
    to_save = model
    if hasattr(model, "merge_and_unload"):  # peft: a full checkpoint is what from_pretrained users expect
        to_save = copy.deepcopy(model).merge_and_unload()
    with atomic.directory(out) as tmp:
        to_save.save_pretrained(tmp, safe_serialization=True)
        faults.point("final_save")  # a test hook (mmrft.faults)
        processor.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return Path(out)
