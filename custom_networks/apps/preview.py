"""A preview PNG of one case: three orthogonal slices through the organs' centre, a coloured overlay, a legend.

Drawn with Pillow (a core dependency), so the command needs no optional package. The scan and the label map
are read with ITK and brought to RAS, so the views are in the usual radiological layout whatever the input's
orientation: axial and coronal with the patient's right on the image's left, axial with anterior up, coronal and
sagittal with superior up, sagittal with anterior on the left. Each panel has the voxels' physical aspect ratio.
The views are cut to the body (and every labelled voxel) and cross at the centre of mass of all labelled voxels
(the centre of the body when nothing was found). CT is
shown in a soft-tissue window (W 400, L 40 HU); other modalities between their 1st and 99th percentiles.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["PALETTE", "render_preview", "write_preview"]

#: overlay colour of label value i (1-based; cycles beyond its length)
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]
#: CT display window (HU): soft tissue, W 400 / L 40
CT_WINDOW = (-160.0, 240.0)
#: the longest side of a panel, in pixels
PANEL_PIXELS = 300
ALPHA = 0.45


def _colour(value: int) -> tuple[int, int, int]:
    return PALETTE[(value - 1) % len(PALETTE)]


def _read_ras(path: str, modality: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(array (X, Y, Z), spacing (3,))`` of a volume file or DICOM series folder (its one image series of
    ``modality``, RT objects beside it skipped), in RAS orientation."""
    from monai.transforms import LoadImage, Orientation

    from ..transforms.dicom_reader import SeriesITKReader

    reader = SeriesITKReader(modality=modality) if os.path.isdir(path) else "ITKReader"
    loaded = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(path)
    image = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(loaded)
    spacing = np.sqrt((np.asarray(image.affine)[:3, :3] ** 2).sum(axis=0))
    return np.asarray(image)[0], spacing


def _grey(image: np.ndarray, modality: str) -> np.ndarray:
    lo, hi = CT_WINDOW if modality == "CT" else np.percentile(image, (1, 99))
    return (np.clip((image.astype(np.float32) - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255).astype(np.uint8)


def _crop_to_body(image: np.ndarray, label: np.ndarray, modality: str, margin: int = 4):
    """``image`` and ``label`` cut to the box around the body (CT above -500 HU; other modalities above a tenth of
    their 99th percentile) and every labelled voxel, plus ``margin`` voxels: planning CTs hold much air."""
    threshold = -500.0 if modality == "CT" else 0.1 * float(np.percentile(image, 99))
    inside = np.argwhere((image > threshold) | (label > 0))
    if not len(inside):
        return image, label
    lo = np.maximum(inside.min(axis=0) - margin, 0)
    hi = np.minimum(inside.max(axis=0) + margin + 1, image.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    return image[box], label[box]


def _views(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal, sagittal slices (rows, columns) of a RAS ``(X, Y, Z)`` array, in display orientation."""
    x, y, z = centre
    return [volume[::-1, ::-1, z].T, volume[::-1, y, ::-1].T, volume[x, ::-1, ::-1].T]


def _panel(grey: np.ndarray, label: np.ndarray, size: tuple[int, int]):
    from PIL import Image

    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    for value in np.unique(label[label > 0]):
        mask = label == value
        rgb[mask] = (1 - ALPHA) * rgb[mask] + ALPHA * np.asarray(_colour(int(value)), np.float32)
    image = Image.fromarray(rgb.round().astype(np.uint8), "RGB")
    return image.resize(size, Image.Resampling.NEAREST)


def render_preview(image: np.ndarray, label: np.ndarray, spacing, class_names: dict[int, str], modality: str,
                   title: str):
    """The preview as a Pillow image.

    Args:
        image: the scan, RAS ``(X, Y, Z)``.
        label: the label map on the same grid.
        spacing: voxel size in mm along X, Y, Z.
        class_names: label value -> organ name, for the legend (organs absent from ``label`` marked "not found").
        modality: ``"CT"`` (HU window) or another modality (percentile window).
        title: the line above the panels (the case's name).
    """
    from PIL import Image, ImageDraw, ImageFont

    if image.shape != label.shape:
        raise ValueError(f"preview: the scan has shape {image.shape} but the label map {label.shape}")
    image, label = _crop_to_body(image, label, modality)
    found = np.argwhere(label > 0)
    centre = tuple(int(v) for v in (found.mean(axis=0).round() if len(found) else np.asarray(label.shape) // 2))
    sx, sy, sz = (float(s) for s in spacing)
    extents = [(image.shape[0] * sx, image.shape[1] * sy), (image.shape[0] * sx, image.shape[2] * sz),
               (image.shape[1] * sy, image.shape[2] * sz)]
    scale = PANEL_PIXELS / max(max(e) for e in extents)
    sizes = [(max(1, round(w * scale)), max(1, round(h * scale))) for w, h in extents]
    panels = [_panel(g, lab, size) for g, lab, size in zip(_views(_grey(image, modality), centre),
                                                             _views(label, centre), sizes)]
    font = ImageFont.load_default()
    pad, line = 8, 14
    present = set(np.unique(label).tolist())
    legend = [(value, f"{name}" + ("" if value in present else " (not found)")) for value, name in class_names.items()]
    per_row = 4
    legend_rows = -(-len(legend) // per_row)
    width = sum(p.width for p in panels) + pad * (len(panels) + 1)
    height = pad + line + line + max(p.height for p in panels) + pad + legend_rows * (line + 4) + pad
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill=(255, 255, 255), font=font)
    x = pad
    captions = ["axial (R on the left)", "coronal (R on the left)", "sagittal (anterior on the left)"]
    for panel, caption in zip(panels, captions):
        draw.text((x, pad + line), caption, fill=(200, 200, 200), font=font)
        canvas.paste(panel, (x, pad + 2 * line))
        x += panel.width + pad
    top = pad + 2 * line + max(p.height for p in panels) + pad
    column = (width - pad) // per_row
    for i, (value, text) in enumerate(legend):
        lx, ly = pad + (i % per_row) * column, top + (i // per_row) * (line + 4)
        draw.rectangle((lx, ly + 1, lx + 10, ly + 11), fill=_colour(value))
        draw.text((lx + 15, ly), text, fill=(255, 255, 255) if value in present else (150, 150, 150), font=font)
    return canvas


def write_preview(path: str | os.PathLike, image_source: str, label_file: str | os.PathLike,
                  class_names: dict[int, str], modality: str, title: str) -> None:
    """Read the scan ``image_source`` (volume file or DICOM series folder) and the label map ``label_file``, and
    write :func:`render_preview`'s PNG to ``path`` atomically."""
    from ..writers.base import write_atomically

    image, spacing = _read_ras(str(image_source), modality or None)
    label, _ = _read_ras(str(label_file))
    picture = render_preview(image, np.rint(label).astype(np.int64), spacing, class_names, modality, title)
    write_atomically(path, lambda tmp: picture.save(tmp, format="PNG"))
