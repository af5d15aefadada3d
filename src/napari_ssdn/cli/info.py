"""``ssdn info``: what a model file holds, in lines or as one JSON object."""

from __future__ import annotations

import json

from .text import choice_lines, fmt_time, params_str

__all__ = ["cmd_info"]


def curve_str(curve: dict) -> str:
    """A variance curve as ``level: variance`` pairs."""
    return ", ".join(f"{m:.4g}: {v:.4g}" for m, v in zip(curve["mean"], curve["variance"], strict=True))


def cmd_info(args) -> int:
    from ..core import load_model

    model, meta = load_model(args.model)
    cfg = model.config
    tr = meta.get("training", {})
    info = {
        "file": str(args.model),
        "package_version": meta.get("package_version"),
        "architecture": {
            "mode": cfg.mode,
            "blind_spot": cfg.arch.blind,
            "channels": cfg.channels,
            "encoder_width": cfg.enc,
            "decoder_width": cfg.dec,
            "depth": cfg.depth,
            "ndim": cfg.ndim,
            "z_flat_levels": cfg.flat,
            "subsample": cfg.subsample,
            "blind_region": list(cfg.region) if cfg.mode != "supervised" else None,
            "parameters": sum(p.numel() for p in model.net.parameters()),
        },
        "noise": {
            "model": cfg.noise,
            "params": model.noise_params_data(),
            "curve": model.noise_curve_data(),
            "learned": list(cfg.learned),
            "per_image": cfg.per_image,
        },
        "normalization": {"offset": cfg.offset, "scale": cfg.scale},
        "training": tr,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    a = info["architecture"]
    print(f"model       {args.model} (napari-ssdn {info['package_version']})")
    sub = f", on {cfg.subsample} x {cfg.subsample} interleaved sub-images" if cfg.subsample > 1 else ""
    print(f"network     {model.describe()}, {a['parameters']:,} parameters{sub}")
    learned = ", ".join(cfg.learned) or "none"
    pair = tr.get("pair")
    if pair:
        print(f"pair        trained on two observations of each image: {pair['method']} ({pair['why']})")
    if cfg.mode == "ssdn" and cfg.noise == "curve":
        print(f"noise       curve: variance against the signal, measured from the data: {curve_str(cfg.noise_curve)}")
    elif cfg.mode == "ssdn":
        print(
            f"noise       {cfg.noise}: {params_str(info['noise']['params'])} (learned: "
            f"{learned}{', per image' if cfg.per_image else ''})"
        )
    else:
        print(f"noise       none in the model ({cfg.mode} network: no posterior)")
    ranks = f" x {tr['ranks']} ranks" if tr.get("ranks", 1) > 1 else ""
    print(
        f"training    {tr.get('steps', 0)} steps, {fmt_time(tr.get('elapsed', 0.0))} on {tr.get('device', '?')}{ranks}"
    )
    val = tr.get("val_loss", tr.get("last_val_loss"))
    if val is not None:
        kept = tr.get("kept_step")
        where = f" (weights of step {kept}, the lowest)" if kept is not None and kept != tr.get("steps") else ""
        print(f"validation  loss {val:.4f}{where}")
    for line in choice_lines(tr.get("auto")):
        print(f"chosen      {line}")
    return 0
