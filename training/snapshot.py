"""Network snapshots as plain data: safe to load (`torch.load(weights_only=True)`), atomic to write.

A snapshot file `network-snapshot-<kimg:06d>.pt` is `torch.save` of one dict holding only dicts,
lists, tuples, str, numbers, None and tensors:

    format: "renyi-gan-snapshot", version: 1
    G, D, G_ema: {class_name, init_kwargs, state_dict}  (G_ema may instead be
                 {class_name, init_kwargs, state_dict: None, same_as: "G"} when it equals G)
    augment_pipe: same form or None;  augment_p: float
    training_set_kwargs: dict (how to rebuild the dataset)
    and, for resuming: G_opt, D_opt (optimizer state dicts), progress {cur_nimg, cur_tick,
    batch_idx, tick_start_nimg}, rng (python/numpy/torch states), loss_state (e.g. pl_mean),
    alpha_schedule {spec, alpha}, ada_state, training_options.

Loading never runs code from the file: classes are named by string and rebuilt with
`dnnlib.util.construct_class_by_name`, which only accepts the project's own packages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from dnnlib.util import EasyDict, UserError, atomic_path, construct_class_by_name

FORMAT = "renyi-gan-snapshot"
VERSION = 1


def to_plain(obj: Any) -> Any:
    """Recursively turn EasyDicts, numpy scalars/arrays and paths into plain, weights_only-safe data."""
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, int) else k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        seq = [to_plain(v) for v in obj]
        return seq if isinstance(obj, list) else tuple(seq)
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"snapshot values must be plain data, got {type(obj).__name__}")


def module_record(module: Optional[torch.nn.Module]) -> Optional[dict]:
    """{class_name, init_kwargs, state_dict} of a module built with recorded init_kwargs."""
    if module is None:
        return None
    if not hasattr(module, "init_kwargs"):
        raise TypeError(f"{type(module).__name__} does not record init_kwargs; cannot snapshot it")
    return {
        "class_name": f"{type(module).__module__}.{type(module).__qualname__}",
        "init_kwargs": to_plain(dict(module.init_kwargs)),
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
    }


def save_snapshot(path: Union[str, os.PathLike], **state: Any) -> None:
    """Write `state` (modules become records, the rest must be plain data) to `path` atomically.

    Keys holding `torch.nn.Module`s (G, D, G_ema, augment_pipe) are stored as
    {class_name, init_kwargs, state_dict}; `G_ema='same_as_G'` stores a reference to G instead of
    a second copy of identical weights.
    """
    data: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    for key, value in state.items():
        if isinstance(value, torch.nn.Module):
            data[key] = module_record(value)
        elif key == "G_ema" and value == "same_as_G":
            rec = module_record(state["G"])
            data[key] = {"class_name": rec["class_name"], "init_kwargs": rec["init_kwargs"], "state_dict": None, "same_as": "G"}
        else:
            data[key] = to_plain(value)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def read_snapshot(path: Union[str, os.PathLike]) -> dict:
    """The raw plain-data dict of a snapshot; a missing, foreign or corrupt file -> `UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"snapshot '{p}' not found; pass a network-snapshot-*.pt file from a run folder")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # anything torch.load's safe unpickler rejects or cannot parse
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if first.startswith("Weights only load failed"):  # torch's advice to drop weights_only does not apply here
            first = "its content is not plain tensors and data"
        raise UserError(
            f"'{p}' is not a snapshot of this project or is corrupt (safe loading refused it: {first[:200]}); "
            "only network-snapshot-*.pt files written by train.py can be loaded"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"'{p}' is not a snapshot of this project (no '{FORMAT}' tag); use a file written by train.py")
    if data.get("version") != VERSION:
        raise UserError(f"'{p}' has snapshot version {data.get('version')}, this code reads version {VERSION}")
    for key in ("G", "D", "G_ema"):
        if not isinstance(data.get(key), dict) or "class_name" not in data[key]:
            raise UserError(f"'{p}' is incomplete: entry '{key}' is missing or malformed")
    return data


# Constructor settings that change how a network runs but not its parameters or buffers: they depend on
# the device and precision (fp16 layers and clamping on CUDA only), so a snapshot may be resumed across them.
RUNTIME_ONLY_KWARGS = frozenset({"num_fp16_res", "conv_clamp"})


def _kwarg_differences(saved: Any, wanted: Any, prefix: str) -> list[str]:
    """Settings that differ between a recorded and a requested constructor kwarg tree.

    Only keys present on both sides are compared (recorded kwargs hold defaults the request omits);
    `RUNTIME_ONLY_KWARGS` are skipped.
    """
    if isinstance(saved, dict) and isinstance(wanted, dict):
        out: list[str] = []
        for key in wanted:
            if key in saved and key not in RUNTIME_ONLY_KWARGS:
                out += _kwarg_differences(saved[key], wanted[key], f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(saved, (list, tuple)) and isinstance(wanted, (list, tuple)):
        saved, wanted = list(saved), list(wanted)
    if isinstance(saved, torch.Tensor) or isinstance(wanted, torch.Tensor):
        return []  # tensors are weights/buffers, not architecture settings
    return [] if saved == wanted else [f"{prefix}: snapshot {saved!r}, this run {wanted!r}"]


def resume_differences(data: dict, G_kwargs: dict, D_kwargs: dict, common_kwargs: dict) -> list[str]:
    """Why a snapshot's G and D cannot be loaded into the networks a run would build; [] if they can.

    Compares the class names and the constructor settings the snapshot recorded with those of the run
    (`G_kwargs`/`D_kwargs` from the config, `common_kwargs` = c_dim, img_resolution, img_channels).
    """
    problems: list[str] = []
    for key, kwargs in (("G", G_kwargs), ("D", D_kwargs)):
        rec = data[key]
        wanted = to_plain({k: v for k, v in dict(kwargs).items() if k != "class_name"})
        wanted.update(to_plain(dict(common_kwargs)))
        if rec["class_name"] != kwargs["class_name"]:
            problems.append(f"{key}: snapshot class {rec['class_name']}, this run {kwargs['class_name']}")
            continue
        problems += [f"{key} {d}" for d in _kwarg_differences(rec.get("init_kwargs", {}), wanted, "")]
    return problems


def build_module(record: dict, state_dict: Optional[dict] = None, device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    """Rebuild a module from {class_name, init_kwargs, state_dict} (strict state loading)."""
    module = construct_class_by_name(class_name=record["class_name"], **record["init_kwargs"])
    sd = state_dict if state_dict is not None else record["state_dict"]
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise UserError(f"snapshot weights do not fit {record['class_name']}: {str(err).splitlines()[0]}") from None
    return module.to(device)


def load_snapshot(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu") -> EasyDict:
    """Networks of a snapshot, rebuilt in eval mode with requires_grad False.

    Returns EasyDict(G, D, G_ema, augment_pipe (or None), training_set_kwargs, cur_nimg, data),
    where `data` is the raw dict (for resuming).
    """
    data = read_snapshot(path)
    out = EasyDict(data=data)
    for key in ("G", "D", "G_ema", "augment_pipe"):
        rec = data.get(key)
        if rec is None:
            out[key] = None
            continue
        sd = data[rec["same_as"]]["state_dict"] if rec.get("same_as") else None
        module = build_module(rec, sd, device).eval().requires_grad_(False)
        out[key] = module
    out.training_set_kwargs = data.get("training_set_kwargs")
    out.cur_nimg = int(data.get("progress", {}).get("cur_nimg", 0))
    return out
