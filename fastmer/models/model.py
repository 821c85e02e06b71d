"""The trainable, saveable, exportable unit: input adapter + network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastmer.models import InputSpec, get_entry
from fastmer.models.inputs import InputAdapter


class MERModel(nn.Module):
    """Stored representation -> logits: ``InputAdapter`` then the network.

    Args:
        config: ``{"model", "classes", "input", "stored": {"channels", "shape"}, "options"}``
            as written by :meth:`config` (the JSON saved beside the weights).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        entry = get_entry(config["model"])
        self.config = config
        self.classes = tuple(config["classes"])
        spec = InputSpec.from_json(config["input"])
        stored = config["stored"]
        self.adapter = InputAdapter(spec, tuple(stored["channels"]), tuple(stored["shape"][-2:]))
        self.net = entry.build(len(self.classes), in_channels=len(spec.channels), **config.get("options", {}))

    @classmethod
    def create(
        cls, name: str, classes: tuple[str, ...], stored_channels: tuple[str, ...], stored_shape: tuple[int, ...],
        **options: Any,
    ) -> MERModel:
        entry = get_entry(name)
        return cls(
            {
                "model": name,
                "classes": list(classes),
                "input": entry.input.to_json(),
                "stored": {"channels": list(stored_channels), "shape": list(stored_shape)},
                "options": {**entry.options, **options},
            }
        )

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return self.net(self.adapter(stored))

    def save(self, weights: Path, config_path: Path, extra: dict[str, Any] | None = None) -> None:
        """Weights as safetensors and the config as JSON (never pickle)."""
        from safetensors.torch import save  # noqa: PLC0415

        from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        atomic_write_bytes(weights, save(state, metadata={"fastmer_model": self.config["model"]}))
        atomic_write_bytes(config_path, (json.dumps({**self.config, **(extra or {})}, indent=2) + "\n").encode())

    @classmethod
    def load(cls, weights: Path, config_path: Path) -> MERModel:
        from safetensors.torch import load_file  # noqa: PLC0415

        config = json.loads(Path(config_path).read_text())
        model = cls(config)
        model.net.load_state_dict(load_file(str(weights)))
        return model.eval()
