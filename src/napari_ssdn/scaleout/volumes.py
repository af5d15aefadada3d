"""Volumes cut into blocks: planned once on the client, opened block by block on workers.

The client reads what the serial path computes per volume (the block plan, the noise
parameters of the whole volume, the scale check) and creates the output; each block task
then computes exactly what the serial tiler computes for that block, so the result is the
serial result.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import SSDNError
from .partial import BlockRecord, KeptOutput, discard, partial_path, plan_key, recorded_inner
from .zarrio import is_zarr, open_zarr_output, read_zarr

__all__ = ["VolumeJob", "plan_volume", "open_block_input", "open_block_output"]


@dataclass
class VolumeJob:
    """One volume: its block tasks (each spec's ``block`` is its index in the plan), the
    warnings found while planning, its output (created, and made final by :meth:`finish`)
    and the record of its whole blocks (:class:`~.partial.BlockRecord`)."""

    input: Path
    target: Path
    specs: list
    warnings: list = field(default_factory=list)
    output: object = None
    done: bool = False
    record: object = None
    blocks: int = 0
    resumed: int = 0

    def finish(self, error: BaseException | None = None) -> None:
        """Make the output final; when ``error`` is given, keep the whole blocks written so
        far (the partial output and its record) for ``--resume``."""
        if error is None:
            self.output.__exit__(None, None, None)
            self.record.remove()
        else:
            self.output.__exit__(type(error), error, None)
            if self.record.done:
                self.record.save()
            else:  # nothing to keep
                discard(self.target)

    @property
    def kept(self) -> int:
        """Blocks whose values are in the partial output."""
        return len(self.record.done) if self.record is not None else 0


def _source(path: Path, axes_option: str | None):
    """``(array, axes, voxel, unit, origin, start, input spec)`` of a volume read region by
    region, or None when the file is not one (a TIFF is read whole by its task)."""
    from ..batch import volume_axes
    from ..io import MRC_SUFFIXES, read_image

    if is_zarr(path):
        array, axes, voxel, unit = read_zarr(path)
        return array, axes_option or axes, voxel, unit, None, None, {"zarr": str(Path(path) / array.path)}
    if path.suffix.lower() not in MRC_SUFFIXES:
        return None
    img = read_image(path, mmap=True)
    axes = axes_option or volume_axes(img.axes)
    return img.data, axes, img.voxel, img.unit, img.origin, img.start, {"mrc": str(path)}


def plan_volume(
    model,
    path,
    target,
    output: str,
    options: dict,
    axes: str | None = None,
    model_name: str = "the model",
    *,
    model_path,
    resume: bool = False,
):
    """A :class:`VolumeJob` for the volume ``path``, or None where one task does the file
    (2D models, a TIFF input, a volume that fits one block).

    ``options`` as for :func:`~napari_ssdn.batch.denoise_file` (``device``, ``tile``,
    ``noise_params``, ``mixed_precision``). The output is created here (call ``finish``),
    or with ``resume`` the partial output an earlier run of the same plan left is opened
    again and only its missing blocks are planned (``model_path``: the model's file).

    Raises
    ------
    SSDNError
        Naming the file: unreadable, not a Z, Y, X volume where OME-Zarr needs one.
    """
    path, target = Path(path), Path(target)
    zarr_io = is_zarr(path) or is_zarr(target)
    if model.config.ndim != 3 or model.config.subsample != 1 or model.config.channels != 1:
        if zarr_io:
            raise SSDNError(
                f"{str(path)!r}: OME-Zarr files are denoised as volumes, with a one-channel 3D model; "
                f"{model_name} is not one: write a .tif or .mrc output, or use a 3D model"
            )
        return None
    src = _source(path, axes)
    if src is None:
        if zarr_io:
            raise SSDNError(
                f"{str(path)!r}: OME-Zarr outputs are written from MRC or OME-Zarr volumes; "
                "write a .tif output for a TIFF input"
            )
        return None
    data, axes, voxel, unit, origin, start, in_spec = src
    if axes.upper() != "ZYX":
        if zarr_io:
            raise SSDNError(f"{str(path)!r} has axes {axes!r}; OME-Zarr volumes are denoised with axes ZYX")
        return None
    job = _plan(
        model, path, target, output, options, data, (voxel, unit, origin, start), in_spec, zarr_io, model_path, resume
    )
    return job


def _plan(model, path, target, output, options, data, geometry, in_spec, zarr_io, model_path, resume):
    """The :class:`VolumeJob` of a Z, Y, X volume cut into blocks, its output created; None
    where one block holds it all and the output is not OME-Zarr (one task does the file)."""
    from ..core.infer.tiles import block_starts, volume_plan
    from ..core.nets.receptive import branch_margins

    dev, precision, mixed, half = _client_precision(options)
    shape = tuple(int(n) for n in data.shape)
    inner, starts = volume_plan(model, shape, options.get("tile"), dev, half)
    kept_inner = recorded_inner(target, shape) if resume and options.get("tile") is None else None
    if kept_inner is not None:
        inner, starts = kept_inner, block_starts(shape, kept_inner)
    if len(starts) == 1 and not zarr_io:
        return None
    if not any(np.isfinite(np.asarray(data[i])).any() for i in range(shape[0])):  # stops at the first finite slice
        raise SSDNError(
            f"{str(path)!r}: the image holds no finite values (all NaN or infinite): nothing to denoise; check the file"
        )
    warnings = _scale_warnings(model, path, data, shape)
    noise = _volume_noise(model, data, dev, precision, options)
    job = VolumeJob(path, target, [], warnings, blocks=len(starts))
    done = _kept_blocks(
        job,
        model_path,
        shape,
        inner,
        starts,
        {
            "output": output,
            "tta": options.get("tta"),
            "tile": options.get("tile"),
            "half": half,
            "noise_params": options.get("noise_params") or {},
            "mixed_precision": mixed,
        },
        resume,
    )
    out_spec = _open_output(job, shape, inner, geometry, f"napari-ssdn {output}", reuse=bool(done))
    margins = branch_margins(model.config.arch)
    common = {
        "task": "block",
        "input": in_spec,
        "out": out_spec,
        "output": output,
        "k": 0,
        "inner": list(inner),
        "noise": noise,
        "mixed_precision": mixed,
        "half": half,
        "margins": margins,
    }
    job.specs = [{**common, "start": tuple(s), "block": i} for i, s in enumerate(starts) if i not in done]
    return job


def _client_precision(options: dict):
    """``(device, precision context, mixed_precision option, half)`` the blocks are planned for."""
    from ..core.device import network_precision, resolve_device

    try:
        dev = resolve_device(options.get("device", "auto"))
    except SSDNError:  # workers on GPUs, this client without: blocks sized for a CPU
        dev = resolve_device("cpu")
    mixed = options.get("mixed_precision")
    precision = network_precision(dev, dev.type != "cuda" if mixed is None else mixed)
    half = not isinstance(precision, contextlib.nullcontext)
    return dev, precision, mixed, half


def _scale_warnings(model, path: Path, data, shape: tuple) -> list:
    """The scale check's warning for the volume, read from 16 slices spread over it (or none)."""
    from ..core.infer.denoise import scale_mismatch

    picks = np.unique(np.linspace(0, shape[0] - 1, min(shape[0], 16)).round().astype(int))
    proxy = np.stack([np.asarray(data[int(i)]) for i in picks])  # the slices the scale check reads
    return [f"{str(path)!r}: {m}" for m in [scale_mismatch(model, proxy, "ZYX")] if m]


def _volume_noise(model, data, dev, precision, options: dict) -> dict:
    """The noise parameters of the whole volume, as arrays every block task is given."""
    from ..core.infer.outputs import noise_override, sample_noise_params
    from ..core.infer.tiles import TileWriter

    norm = TileWriter(None, {}, model.config.offset, model.config.scale).norm
    # A per-image model reads the whole volume for its noise level, as the serial path does.
    whole = np.asarray(data[...])[..., None] if model.estimator is not None else np.zeros((1,) * 4, np.float32)
    with precision:
        noise = sample_noise_params(
            model.to(dev).eval(), whole, norm, dev, noise_override(model, options.get("noise_params"))
        )
    noise = {k: v.detach().cpu().numpy() if hasattr(v, "detach") else v for k, v in noise.items()}
    del whole
    return noise


def _open_output(job: VolumeJob, shape: tuple, inner, geometry, label: str, reuse: bool) -> dict:
    """Create the volume's output (OME-Zarr or a kept memory map) as ``job.output`` and return
    the spec a block task opens it by; with ``reuse``, the partial output is opened again."""
    voxel, unit, origin, start = geometry
    target = job.target
    if is_zarr(target):
        job.output = open_zarr_output(
            target, shape, inner, voxel, unit, label, partial=partial_path(target), reuse=reuse
        )
        return {"zarr": str(job.output.__enter__() / "0")}
    job.output = KeptOutput(
        target,
        shape,
        "ZYX",
        voxel,
        unit,
        origin,
        label=label,
        start=start,
        partial=partial_path(target),
        reuse=reuse,
    )
    mm = job.output.__enter__()
    return {"memmap": mm.filename, "offset": int(mm.offset), "dtype": mm.dtype.str, "shape": shape}


def _kept_blocks(job: VolumeJob, model_path, shape, inner, starts, settings: dict, resume: bool) -> set:
    """The blocks an earlier run of the same plan left whole (with ``resume``), and the
    job's record; a partial output that is not continued is replaced, with a warning."""
    job.record = BlockRecord(job.target, plan_key(job.input, model_path, shape, inner, starts, settings))
    kept = partial_path(job.target).exists()
    done = job.record.load() if resume and kept else set()
    if len(done) == len(starts):
        done.discard(max(done))  # one block runs, and its completion makes the output final
    job.record.done, job.resumed = set(done), len(done)
    if kept and not done:
        why = "the input, the model or the settings changed" if resume else "--resume continues it"
        job.warnings.append(f"{str(job.target)!r}: the unfinished output of an earlier run is started afresh ({why})")
    return done


class _ZarrSamples:
    """A Z, Y, X zarr array seen as the ``(1, Z, Y, X, 1)`` samples the tiler reads and
    writes, region by region."""

    def __init__(self, array, sample: bool = False):
        self.array, self.sample = array, sample
        self.shape = tuple(array.shape) + (1,) if sample else (1,) + tuple(array.shape) + (1,)

    def __getitem__(self, idx):
        if not isinstance(idx, tuple):
            return _ZarrSamples(self.array, sample=True)
        region = idx[:3] if self.sample else idx[1:4]
        return np.asarray(self.array[tuple(region)])[..., None]

    def __setitem__(self, idx, value):
        self.array[tuple(idx[1:4])] = np.asarray(value)[..., 0]


def open_block_input(spec: dict):
    """The ``(1, Z, Y, X, 1)`` samples of a task's input volume, read region by region."""
    if "zarr" in spec:
        import zarr

        return _ZarrSamples(zarr.open_array(spec["zarr"], mode="r"))
    from ..core.data import to_samples
    from ..io import read_image

    return to_samples(read_image(spec["mrc"], mmap=True).data, "ZYX", 3)


def open_block_output(spec: dict):
    """The pre-created output of a volume as ``(1, Z, Y, X, 1)`` samples a block writes into."""
    if "zarr" in spec:
        import zarr

        return _ZarrSamples(zarr.open_array(spec["zarr"], mode="r+"))
    from ..core.data import to_samples

    mm = np.memmap(
        spec["memmap"], dtype=np.dtype(spec["dtype"]), mode="r+", offset=spec["offset"], shape=tuple(spec["shape"])
    )
    return to_samples(mm, "ZYX", 3)
