"""fastmer flow"""

from __future__ import annotations

import click

from fastmer.cli import CONTEXT
from fastmer.config import FLOW_BACKENDS, TVL1_PRESETS


@click.command("flow", context_settings=CONTEXT)
@click.argument("image0", type=click.Path(exists=True, dir_okay=False))
@click.argument("image1", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), required=True,
              help="Middlebury .flo file to write.")
@click.option("--backend", "-b", type=click.Choice(FLOW_BACKENDS), default="fastmer", help="Optical flow implementation.")
@click.option("--preset", type=click.Choice(TVL1_PRESETS), default="opencv",
              help="TV-L1 parameters: OpenCV's defaults, or the IPOL reference's (better on large, textured motion).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              help="Where fastmer's TV-L1 runs (auto: CUDA when available).")
@click.option("--viz", type=click.Path(dir_okay=False), default=None,
              help="Also write the Middlebury colour coding of the flow (PNG).")
def command(image0, image1, out, backend, preset, device, viz):
    """Optical flow from IMAGE0 to IMAGE1 (grayscale), written as a Middlebury .flo file."""
    import time  # noqa: PLC0415

    import cv2  # noqa: PLC0415

    from fastmer.motion.flo import write_flo  # noqa: PLC0415
    from fastmer.motion.flow import compute_flow  # noqa: PLC0415
    from fastmer.motion.viz import flow_to_color  # noqa: PLC0415
    from fastmer.ops.tvl1 import TVL1Params  # noqa: PLC0415

    images = []
    for path in (image0, image1):
        image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise click.BadParameter(f"cannot read image {path}", param_hint="IMAGE0/IMAGE1")
        images.append(image)
    if images[0].shape != images[1].shape:
        raise click.BadParameter(f"{image0} is {images[0].shape[1]}x{images[0].shape[0]} but {image1} is "
                                 f"{images[1].shape[1]}x{images[1].shape[0]}", param_hint="IMAGE0/IMAGE1")
    if device == "auto":
        import torch  # noqa: PLC0415

        device = "cuda" if torch.cuda.is_available() else "cpu"
    params = TVL1Params.preset(preset) if backend in ("fastmer", "torch", "opencv") else None
    start = time.perf_counter()
    try:
        flow = compute_flow(images[0][None], images[1][None], backend=backend, params=params,
                            device=device if backend in ("fastmer", "torch") else None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    seconds = time.perf_counter() - start
    field = flow[0].permute(1, 2, 0).cpu().numpy()
    write_flo(out, field)
    message = f"wrote {out} ({field.shape[1]}x{field.shape[0]}, {backend}"
    message += f"/{preset}" if params is not None else ""
    message += f", {seconds:.2f} s)"
    if viz:
        if not cv2.imwrite(viz, cv2.cvtColor(flow_to_color(field), cv2.COLOR_RGB2BGR)):
            raise click.ClickException(f"cannot write {viz}")
        message += f" and {viz}"
    click.echo(message)
