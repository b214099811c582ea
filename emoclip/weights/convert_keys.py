"""Key mapping of the authors' EmoCLIP checkpoints (NickyFot/EmoCLIP) onto EmoCLIP's state dict.

Pure functions of key names (reference.md §7): no files are read and no tensors are copied.
Two source layouts are understood:

* ``"vclip"``: ``VClip(num_layers=2).state_dict()`` from ``train.py``, usually DDP-wrapped
  (``module.`` prefix): ``logit_scale``, ``backbone.*`` (the whole OpenAI CLIP, same key layout as
  open_clip's ``CLIP``) and ``temporal.*``.
* ``"downstream"``: ``DownstreamTask.state_dict()``: ``backbone.*`` is the CLIP *visual tower*
  only, ``temporal.*`` as above, ``mlp.*`` the classification head (dropped). Which text-tower
  keys must then come from another CLIP is `text_tower_needed`.

`emoclip.weights.convert` reads the files, completes the text tower and writes the result.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import torch

from emoclip.weights.files import CheckpointError

LAYOUTS = ("vclip", "downstream")
DDP_PREFIX = "module."
HEAD_PREFIX = "mlp."  # DownstreamTask's classification head: not part of EmoCLIP

_TEMPORAL_LAYER = re.compile(r"^temporal\.temporal_transformer\.layers\.(\d+)\.([01])\.fn\.(.+)$")
# Inside one temporal layer: (sub-block, authors' module path) -> our module path. Every module
# has a weight and a bias, except to_qkv (bias=False).
_TEMPORAL_PARTS = {
    ("0", "norm"): "norm1",
    ("0", "fn.to_qkv"): "attn.qkv",
    ("0", "fn.to_out.0"): "attn.proj",
    ("1", "norm"): "norm2",
    ("1", "fn.net.0"): "mlp.fc1",
    ("1", "fn.net.3"): "mlp.fc2",
}
_NO_BIAS = {"fn.to_qkv"}
_TEMPORAL_DIRECT = ("temporal.cls_token", "temporal.pos_embedding")
_LAYOUT_HELP = (
    "expected the authors' train.py VClip state dict (logit_scale, backbone.visual.*, "
    "backbone.transformer.*, temporal.temporal_transformer.layers.*; optional 'module.' prefix) "
    "or their DownstreamTask state dict (backbone.conv1.weight and other visual-tower keys, "
    "temporal.*, mlp.*)"
)


# ----------------------------------------------------------------------------- layouts


def strip_ddp_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that ``DistributedDataParallel.state_dict()`` adds.

    Args:
        state_dict: Tensors, with or without the prefix.

    Returns:
        A new dict with the prefix removed from every key that has it.
    """
    return {k.removeprefix(DDP_PREFIX): v for k, v in state_dict.items()}


def _describe_keys(keys: Sequence[str], limit: int = 8) -> str:
    """``"N keys: a.* (10), b (1), ..."`` grouped by the first name component."""
    groups = Counter(k.split(".", 1)[0] + (".*" if "." in k else "") for k in keys)
    shown = ", ".join(f"{g} ({n})" for g, n in groups.most_common(limit))
    more = f", and {len(groups) - limit} more groups" if len(groups) > limit else ""
    return f"{len(keys)} keys: {shown}{more}" if keys else "no tensors at all"


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Which of the authors' checkpoint layouts a state dict is.

    Args:
        state_dict: The checkpoint's tensors, with or without the ``module.`` prefix.

    Returns:
        ``"vclip"`` (train.py's VClip: whole CLIP + temporal + logit_scale) or ``"downstream"``
        (DownstreamTask: CLIP visual tower + temporal + classification head).

    Raises:
        CheckpointError: neither layout; the message says what was found instead.
    """
    keys = list(strip_ddp_prefix(state_dict))
    has_authors_temporal = any(_TEMPORAL_LAYER.match(k) for k in keys)
    if has_authors_temporal:
        if any(k.startswith("backbone.visual.") for k in keys):
            return "vclip"
        if "backbone.conv1.weight" in keys or "backbone.class_embedding" in keys:
            return "downstream"
    found = _describe_keys(keys)
    if any(k.startswith("temporal.blocks.") for k in keys):
        hint = (
            "it looks like an EmoCLIP checkpoint already (temporal.blocks.*): "
            "load it with emoclip.load_model"
        )
    elif "visual.conv1.weight" in keys and not any(k.startswith("temporal.") for k in keys):
        hint = "it looks like a plain CLIP state dict (no temporal module)"
    elif not has_authors_temporal:
        hint = "there are no temporal.temporal_transformer.layers.* keys"
    else:
        hint = (
            "there is a temporal module but no CLIP visual tower "
            "(backbone.visual.* or backbone.conv1.weight)"
        )
    raise CheckpointError(
        f"not an authors' EmoCLIP checkpoint: found {found}; {hint}. {_LAYOUT_HELP}"
    )


def temporal_layer_count(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Number of layers of the authors' temporal transformer in a state dict.

    Args:
        state_dict: Authors' tensors, with or without the ``module.`` prefix.

    Returns:
        The layer count (0 when there is none).

    Raises:
        CheckpointError: the layer indices are not 0..N-1.
    """
    matches = (_TEMPORAL_LAYER.match(k) for k in strip_ddp_prefix(state_dict))
    found = {int(m.group(1)) for m in matches if m}
    if found and found != set(range(len(found))):
        raise CheckpointError(f"temporal layer indices are not contiguous from 0: {sorted(found)}")
    return len(found)


def _map_temporal_key(key: str) -> str | None:
    """Our name for one of the authors' temporal keys, or None if it is not one we know."""
    if key in _TEMPORAL_DIRECT:
        return key
    match = _TEMPORAL_LAYER.match(key)
    if match is None:
        return None
    layer, sub, rest = match.groups()
    path, _, leaf = rest.rpartition(".")
    ours = _TEMPORAL_PARTS.get((sub, path))
    if ours is None or leaf not in (("weight",) if path in _NO_BIAS else ("weight", "bias")):
        return None
    return f"temporal.blocks.{layer}.{ours}.{leaf}"


def _map_key(key: str, layout: str) -> str | None:
    """Our name for an authors' key (``module.`` already stripped); None if unknown."""
    if key.startswith("temporal."):
        return _map_temporal_key(key)
    if key == "logit_scale":
        return key
    if key.startswith("backbone."):
        if layout == "downstream":
            return "backbone.visual." + key[len("backbone.") :]
        return key
    return None


def authors_to_emoclip(
    state_dict: Mapping[str, torch.Tensor], layout: str
) -> dict[str, torch.Tensor]:
    """Rename the authors' tensors to EmoCLIP's state-dict keys (pure: tensors are not copied).

    ``module.`` is stripped; ``logit_scale`` and (VClip) ``backbone.*`` keep their names;
    DownstreamTask's ``backbone.*`` becomes ``backbone.visual.*``; the temporal transformer's
    ``layers.{i}.0.fn.norm`` / ``.0.fn.fn.to_qkv`` / ``.0.fn.fn.to_out.0`` / ``.1.fn.norm`` /
    ``.1.fn.fn.net.0`` / ``.1.fn.fn.net.3`` become ``blocks.{i}.norm1`` / ``attn.qkv`` /
    ``attn.proj`` / ``norm2`` / ``mlp.fc1`` / ``mlp.fc2``. DownstreamTask's ``mlp.*`` head is
    left out (see `dropped_keys`).

    Args:
        state_dict: The authors' tensors.
        layout: ``"vclip"`` or ``"downstream"`` (see `detect_layout`).

    Returns:
        Tensors under EmoCLIP's names.

    Raises:
        CheckpointError: a key that belongs to neither layout.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, tensor in strip_ddp_prefix(state_dict).items():
        if layout == "downstream" and key.startswith(HEAD_PREFIX):
            continue
        ours = _map_key(key, layout)
        if ours is None:
            unknown.append(key)
        else:
            out[ours] = tensor
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} key(s) of the {layout} checkpoint have no EmoCLIP counterpart: "
            f"{unknown[:5]}"
        )
    return out


def dropped_keys(state_dict: Mapping[str, torch.Tensor], layout: str) -> list[str]:
    """Source keys the conversion leaves out (DownstreamTask's classification head).

    Args:
        state_dict: The authors' tensors.
        layout: ``"vclip"`` or ``"downstream"``.

    Returns:
        The keys (``module.`` stripped), sorted.
    """
    if layout != "downstream":
        return []
    return sorted(k for k in strip_ddp_prefix(state_dict) if k.startswith(HEAD_PREFIX))


# ----------------------------------------------------------------------------- text tower keys


def is_text_tower_key(key: str) -> bool:
    """Whether an EmoCLIP key is CLIP outside its visual tower (text transformer, embeddings,
    projection, logit scale): the part a DownstreamTask checkpoint lacks."""
    if key == "logit_scale":
        return True
    return key.startswith("backbone.") and not key.startswith("backbone.visual.")


def text_tower_needed(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]
) -> list[str]:
    """The text-tower keys to take from another CLIP: all of them when `state` has none.

    A checkpoint with only part of a text tower is not completed: `emoclip.weights.convert.verify_state`
    reports it.

    Args:
        state: Converted tensors (EmoCLIP's names).
        expected: Key -> shape of a freshly built model.

    Returns:
        The keys of `expected` to fill, or ``[]``.
    """
    tower = [k for k in expected if is_text_tower_key(k) and k != "logit_scale"]
    if any(k in state for k in tower):
        return []
    return [k for k in expected if is_text_tower_key(k) and k not in state]
