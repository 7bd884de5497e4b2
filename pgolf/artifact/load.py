"""Rebuild a model from an artifact."""

from __future__ import annotations

import torch

from pgolf.artifact.format import Artifact
from pgolf.config import preset_from_dict
from pgolf.errors import ArtifactError
from pgolf.model.gpt import GPT
from pgolf.quant.encoding import decode_state_dict


def model_from_artifact(artifact: Artifact, device: torch.device | str = "cpu") -> GPT:
    preset = preset_from_dict(artifact.preset)
    model = GPT(preset.model)
    state = decode_state_dict(artifact.tensors)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ArtifactError(
            f"artifact does not match its preset's model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.to(device)


def model_from_state(preset: dict, weights: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> GPT:
    """Rebuild a run's float model from its checkpoint (for calibration and analysis)."""
    model = GPT(preset_from_dict(preset).model)
    model.load_state_dict(weights)
    return model.to(device)
