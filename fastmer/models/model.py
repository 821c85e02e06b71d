"""The trainable, saveable, exportable unit: input adapter + network."""

from __future__ import annotations

import hashlib
import inspect
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
        options = dict(config.get("options", {}))
        if "in_shape" in inspect.signature(entry.build_class()).parameters:  # e.g. the SVM: features, not maps
            options["in_shape"] = self.adapter.out_shape
        self.net = entry.build(len(self.classes), in_channels=len(spec.channels), **options)

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
        blob = save(state, metadata={"fastmer_model": self.config["model"]})
        atomic_write_bytes(weights, blob)
        # The weights' hash in the config: a JSON paired with other weights is refused on load.
        config = {**self.config, **(extra or {}), "weights_sha256": hashlib.sha256(blob).hexdigest()}
        atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode())

    @classmethod
    def load(cls, weights: Path, config_path: Path) -> MERModel:
        """The model saved by :meth:`save`; safetensors only, never unpickled.

        Raises:
            ValueError: the weights are not those the config was saved with (hash), or do
                not fit the network the config describes.
        """
        from safetensors.torch import load  # noqa: PLC0415

        config = json.loads(Path(config_path).read_text())
        blob = Path(weights).read_bytes()
        expected = config.get("weights_sha256")
        if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
            raise ValueError(f"{weights} is not the weights file {config_path} was saved with (sha256 differs)")
        model = cls(config)
        try:
            model.net.load_state_dict(load(blob))
        except RuntimeError as exc:  # missing/unexpected keys or other shapes
            raise ValueError(f"{weights} does not fit the {config['model']} network of {config_path}: {exc}") from exc
        return model.eval()
