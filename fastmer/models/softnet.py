"""SOFTNet-style spotter: a shallow three-stream network scoring each frame's flow.

Liong et al., "Shallow Optical Flow Three-Stream CNN for Macro- and Micro-Expression Spotting
from Long Videos" (ICIP 2021): the flow between frame ``i`` and ``i + k`` (``u``, ``v`` and
optical strain, eyes masked) goes through three one-layer streams (3, 5 and 8 filters of
3 x 3, each followed by 3 x 3 max pooling), concatenated, pooled again, a dense layer of 400
and one output: how much frame ``i`` belongs to an expression. fastmer's input is the pooled
map of :func:`fastmer.phases.regions.flow_map` (16 x 16 rather than 42 x 42) and the output
a logit trained with a class-balanced binary cross-entropy (SOFTNet: MSE on pseudo-labels).

One network per scale (micro, macro): :class:`SpotterModel` holds both with what they were
trained on, saved as safetensors + JSON (no pickle).

Example:
    >>> net = SoftNet()
    >>> net(torch.zeros(4, 3, 16, 16)).shape
    torch.Size([4])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

STREAM_FILTERS = (3, 5, 8)
HIDDEN = 400
WEIGHTS_FILE = "spotter.safetensors"
META_FILE = "spotter.json"
FORMAT = "fastmer-spotter"


class SoftNet(nn.Module):
    """``(N, 3, S, S)`` maps (u, v, strain) -> ``(N,)`` logits."""

    def __init__(self, size: int = 16) -> None:
        super().__init__()
        self.size = size
        self.streams = nn.ModuleList(
            nn.Sequential(nn.Conv2d(1, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=3, padding=1))
            for filters in STREAM_FILTERS)
        pooled = -(-((size - 1) // 3 + 1) // 2)  # after the streams' pooling and this one: 16 -> 6 -> 3
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(sum(STREAM_FILTERS) * pooled * pooled, HIDDEN), nn.ReLU(),
                                  nn.Linear(HIDDEN, 1))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if maps.dim() != 4 or maps.shape[1] != 3:
            raise ValueError(f"SoftNet: expected (N, 3, S, S) maps, got {tuple(maps.shape)}")
        streams = [stream(maps[:, c: c + 1]) for c, stream in enumerate(self.streams)]
        return self.head(self.pool(torch.cat(streams, dim=1)))[:, 0]


@dataclass
class SpotterModel:
    """The micro- and macro-scale :class:`SoftNet` of a trained spotter and what they need.

    Attributes:
        nets: ``{"micro": SoftNet, "macro": SoftNet}``.
        scales: ``{kind: [k, stride]}`` at ``fps`` (frames): the flow distance the nets read.
        fps: frame rate the scales were computed at (the spotter rescales by seconds).
        params: the :class:`~fastmer.phases.flowspot.SpotParams` fields used to train and spot.
        scale: per kind, the maps' normalisation (divide by it): the 99th percentile of the
            training maps' magnitudes.
        info: what it was trained on (subjects, videos, frames, epochs).
    """

    nets: dict[str, SoftNet]
    params: dict
    scale: dict[str, float]
    info: dict = field(default_factory=dict)

    def digest(self) -> str:
        """What identifies this spotter's behaviour: a digest of its weights, scales and parameters."""
        import hashlib  # noqa: PLC0415

        h = hashlib.sha256(json.dumps({"params": self.params, "scale": self.scale}, sort_keys=True).encode())
        for kind in sorted(self.nets):
            for name, value in sorted(self.nets[kind].state_dict().items()):
                h.update(f"{kind}.{name}".encode())
                h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def score(self, kind: str, maps: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N,)`` that each map's first frame is in an expression of ``kind``."""
        net = self.nets[kind]
        with torch.no_grad():
            return torch.sigmoid(net(maps.float() / self.scale[kind]))

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save as tensor_bytes  # noqa: PLC0415

        from fastmer.store.writer import atomic_write_bytes  # noqa: PLC0415

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"{kind}.{name}": value.detach().cpu().contiguous()
                   for kind, net in self.nets.items() for name, value in net.state_dict().items()}
        atomic_write_bytes(folder / WEIGHTS_FILE, tensor_bytes(tensors))
        meta = {"format": FORMAT, "version": 1, "params": self.params, "scale": self.scale, "info": self.info,
                "map_size": next(iter(self.nets.values())).size}
        atomic_write_bytes(folder / META_FILE, json.dumps(meta, indent=1).encode())

    @classmethod
    def load(cls, folder: str | Path) -> SpotterModel:
        """A saved spotter; FileNotFoundError/ValueError naming the folder when it is not one."""
        from safetensors.torch import load_file  # noqa: PLC0415

        folder = Path(folder)
        meta_path, weights = folder / META_FILE, folder / WEIGHTS_FILE
        if not meta_path.is_file() or not weights.is_file():
            raise FileNotFoundError(f"{folder} holds no trained spotter ({META_FILE} and {WEIGHTS_FILE}): train one "
                                    "with 'fastmer train SPOT_OUTPUT --task spot'")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path} is not a fastmer spotter (format {meta.get('format')!r})")
        tensors = load_file(str(weights))
        nets = {}
        for kind in ("micro", "macro"):
            net = SoftNet(meta["map_size"])
            net.load_state_dict({name.split(".", 1)[1]: value for name, value in tensors.items()
                                 if name.startswith(f"{kind}.")})
            nets[kind] = net.eval()
        return cls(nets, meta["params"], meta["scale"], meta.get("info", {}))
