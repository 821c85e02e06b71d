"""The trainable, saveable, exportable unit: input adapter + network."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastmer.models import InputSpec, check_options, get_entry, model_options
from fastmer.models.inputs import InputAdapter
from fastmer.models.timm_backbone import adapt_input_weight


class MERModel(nn.Module):
    """Stored representation -> logits: ``InputAdapter`` then the network.

    Args:
        config: ``{"model", "classes", "input", "stored": {"channels", "shape"}, "options"}``
            and, for views stacked as channels, ``"views"``: as written by :meth:`create`
            (the JSON saved beside the weights).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        entry = get_entry(config["model"])
        self.config = config
        self.classes = tuple(config["classes"])
        spec = InputSpec.from_json(config["input"])
        stored = config["stored"]
        self.adapter = InputAdapter(spec, tuple(stored["channels"]), tuple(stored["shape"][-2:]),
                                    tuple(config.get("views") or ()))
        options = dict(config.get("options", {}))
        check_options(entry.name, options)
        if "in_shape" in inspect.signature(entry.build_class()).parameters:  # sizes that follow the input
            options["in_shape"] = self.adapter.out_shape
        self.net = entry.build(len(self.classes), in_channels=self.adapter.out_shape[0], **options)

    @classmethod
    def create(
        cls, name: str, classes: tuple[str, ...], stored_channels: tuple[str, ...], stored_shape: tuple[int, ...],
        *, views: tuple[str, ...] = (), input_size: int | None = None, normalization: str | None = None,
        input_spec: InputSpec | None = None, **options: Any,
    ) -> MERModel:
        """A new model for a stored input: ``views`` stacked as channels, if any; ``input_size``
        and ``normalization`` override the registry's network input size and normalisation
        (:data:`fastmer.models.NORMALIZATIONS`; None: keep them); ``input_spec`` replaces the
        registered input (:func:`fastmer.models.inputs.override_input`)."""
        entry = get_entry(name)
        spec = input_spec or entry.input
        spec = spec if input_size is None else replace(spec, size=input_size)
        if normalization is not None:
            spec = replace(spec, normalization=normalization)
        config = {
            "model": name,
            "classes": list(classes),
            "input": spec.to_json(),
            "stored": {"channels": list(stored_channels), "shape": list(stored_shape)},
            # Every option, defaults included: the JSON says exactly what was built.
            "options": json.loads(json.dumps({**model_options(name), **entry.options, **options})),
        }
        if views:
            config["views"] = list(views)
        return cls(config)

    def parameter_count(self) -> int:
        """Learned values: the network's parameters, or for a solver-fitted model (the SVM,
        whose coefficients are buffers) its coefficients and intercepts."""
        learned = getattr(self.net, "learned_buffers", ())  # a solver's fitted values
        return sum(p.numel() for p in self.net.parameters()) + sum(getattr(self.net, k).numel() for k in learned)

    def match_initial_weights(self, path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """User-supplied starting weights (safetensors, never pickle; e.g. a converted
        torchvision checkpoint), matched to this network without loading them.

        A file tensor ``k`` goes to the network's ``k``, or else to ``p + k`` for every prefix
        ``p`` under which at least half of the file's names exist (a backbone inside each
        stream: the same weights in every stream), when the shapes agree; the rest keep their
        initialisation. A convolution pretrained on 3 (RGB) input channels whose network
        counterpart differs only in its input channels (a stem fed 1, 2 or more maps) is
        adapted by :func:`~fastmer.models.timm_backbone.adapt_input_weight`.

        Returns:
            The state-dict update for ``net.load_state_dict(update, strict=False)``, and
            ``{"file", "sha256", "loaded", "adapted_input", "shape_mismatch", "unused"}``
            (lists of names; ``loaded`` includes the adapted ones).

        Raises:
            ValueError: the file is not safetensors, or no tensor of it fits the network.
        """
        from safetensors.torch import load  # noqa: PLC0415

        path = Path(path)
        blob = path.read_bytes()
        try:
            tensors = load(blob)
        except Exception as exc:
            raise ValueError(f"--weights {path} is not a safetensors file: {exc}") from exc
        own = self.net.state_dict()
        # Prefixes under which the file's names appear in the network (a backbone inside each
        # stream): those holding at least half of the file's tensors, so that a short name such
        # as "conv1.weight" is not matched deep inside another block.
        counts: dict[str, int] = {}
        for key in tensors:
            for prefix in {k[: -len(key)] for k in own if k.endswith("." + key)}:
                counts[prefix] = counts.get(prefix, 0) + 1
        prefixes = [p for p, n in counts.items() if n >= len(tensors) / 2]
        mismatch, unused, adapted, update = [], [], [], {}
        for key, value in tensors.items():
            targets = [key] if key in own else [p + key for p in prefixes if p + key in own]
            if not targets:
                unused.append(key)
            for target in targets:
                shape = own[target].shape
                if shape == value.shape:
                    update[target] = value.to(own[target].dtype)
                elif value.dim() == 4 and value.shape[1] == 3 and shape[:1] + shape[2:] == value.shape[:1] + value.shape[2:]:
                    # an RGB stem for the network's other number of input maps
                    update[target] = adapt_input_weight(value, shape[1]).to(own[target].dtype)
                    adapted.append(target)
                else:
                    mismatch.append(target)
        if not update:
            raise ValueError(f"no tensor of --weights {path} fits the {self.config['model']} network "
                             f"({len(mismatch)} of matching name but other shape, {len(unused)} unknown names)")
        return update, {"file": str(path), "sha256": hashlib.sha256(blob).hexdigest(), "loaded": sorted(update),
                        "adapted_input": sorted(adapted), "shape_mismatch": sorted(mismatch), "unused": sorted(unused)}

    def load_initial_weights(self, path: str | Path) -> dict[str, Any]:
        """Load :meth:`match_initial_weights` into the network; returns its report."""
        update, info = self.match_initial_weights(path)
        self.net.load_state_dict(update, strict=False)
        return info

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


DESCRIBE_SIZE = 128  # the crop size of `fastmer extract`'s default, for a description without a store


def describe(name: str, classes: tuple[str, ...], *, options: dict[str, Any] | None = None,
             input_size: int | None = None, store: Any = None, view_layout: str = "stack",
             normalization: str | None = None, inputs: tuple[str, ...] = ()) -> dict[str, Any]:
    """What model ``name`` is: its input, options and parameter count, for ``fastmer train --describe``.

    Without ``store`` the stored input is assumed at :data:`DESCRIBE_SIZE` (the default crop
    size); with one, its own shapes (and views, stacked per ``view_layout``) are used.
    """
    from fastmer.models.inputs import network_channels, override_input, store_layout  # noqa: PLC0415
    from fastmer.motion.representations import REPRESENTATIONS, representation_shape  # noqa: PLC0415

    entry = get_entry(name)
    views: tuple[str, ...] = ()
    available = ({n: meta["channels"] for n, meta in store.representations.items()} if store is not None
                 else dict(REPRESENTATIONS))
    spec = override_input(entry.input, inputs, available, str(store.path) if store is not None else "fastmer's "
                          "representations")
    if store is not None:
        channels, shape, views, _ = store_layout(store, spec, view_layout)
    else:
        channels = tuple(c for r in spec.representations for c in REPRESENTATIONS[r])
        shape = representation_shape(spec.representations[0], DESCRIBE_SIZE)
    model = MERModel.create(name, classes, channels, (len(channels), *shape[1:]), views=views, input_size=input_size,
                            normalization=normalization, input_spec=spec, **(options or {}))
    parameters = {child: sum(p.numel() for p in module.parameters()) for child, module in model.net.named_children()}
    parameters["(own)"] = model.parameter_count() - sum(parameters.values())
    doc = (entry.build_class().__doc__ or "").strip().split("\n\n")[0]
    return {
        "model": name,
        "class": entry.factory,
        "summary": " ".join(doc.split()),
        "reference": entry.reference,
        "input": {"representations": list(spec.representations), "channels": list(model.adapter.spec.channels),
                  "views_stacked": list(views), "network_input": [*model.adapter.out_shape],
                  "normalization": model.adapter.spec.normalization,
                  "channel_normalization": dict(zip(network_channels(model.adapter.spec, views),
                                                    model.adapter.modes, strict=True))},
        "classes": list(classes),
        "options": model.config["options"],
        "parameters": model.parameter_count(),
        "trainable_parameters": sum(p.numel() for p in model.net.parameters() if p.requires_grad),
        "saved_tensor_elements": sum(t.numel() for t in model.net.state_dict().values()),  # + BN statistics, SVM weights
        "parameters_by_module": {k: v for k, v in parameters.items() if v},
        "recipe": asdict(entry.recipe) if entry.recipe is not None else None,
        "published_recipe": asdict(entry.published) if entry.published is not None else None,
        "fitter": entry.fitter,
    }
