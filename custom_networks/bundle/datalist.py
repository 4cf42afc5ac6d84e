"""Reading a Decathlon-style datalist with errors that say what is wrong and what to do."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from monai.data import load_decathlon_datalist


class DatalistError(ValueError):
    """A datalist, or a file it names, cannot be used; the message names the file and the fix."""


def _demo_hint(bundle_name: str | None) -> str:
    if not bundle_name:
        return "Pass --dataset_dir or --datalist pointing at your own data."
    return (
        f"Make the demo data with `python -m scripts.demo_data {bundle_name} --out bundles/{bundle_name}/data` "
        f"from the repo root, or point the bundle at your own data with --dataset_dir DIR (holding datalist.json) "
        f"or --datalist FILE."
    )


def load_datalist(
    datalist: str,
    key: str = "training",
    keys: Sequence[str] = ("image", "label"),
    bundle_name: str | None = None,
) -> list[dict]:
    """Load the ``key`` list of a Medical Segmentation Decathlon datalist and check every file exists.

    Paths in the datalist are relative to the datalist's folder (or absolute). Returns a list of dicts
    with absolute paths for ``keys``. Raises :class:`DatalistError` naming the datalist, the entry and
    the missing path, before any training or inference starts.
    """
    entry = "{" + ", ".join(repr(k) + ": path" for k in keys) + "}"  # what each case looks like, for the messages
    if not os.path.isfile(datalist):
        raise DatalistError(f"Datalist not found: {os.path.abspath(datalist)}. {_demo_hint(bundle_name)}")
    try:
        with open(datalist, encoding="utf-8") as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise DatalistError(f"Datalist {datalist} is not valid JSON ({e}). Fix the file or regenerate it.") from e
    if not isinstance(content, dict) or key not in content:
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise DatalistError(
            f"Datalist {datalist} has no '{key}' list (found: {found}). "
            f"Add a '{key}' list of {entry} entries."
        )
    if not isinstance(content[key], list):
        raise DatalistError(f"'{key}' in datalist {datalist} is a {type(content[key]).__name__}, not a list of "
                            f"{entry} entries: fix the file.")
    if not content[key]:
        raise DatalistError(f"The '{key}' list in datalist {datalist} is empty: add at least one case.")
    for i, item in enumerate(content[key]):
        wrong = [k for k in keys if isinstance(item, dict) and k in item and not isinstance(item[k], str)]
        if not isinstance(item, dict) or wrong:
            what = f"its {wrong[0]} is {item[wrong[0]]!r}, not a path" if wrong else f"it is {item!r}, not an entry"
            raise DatalistError(f"Entry {i} of '{key}' in datalist {datalist} is malformed: {what}. Each entry is "
                                f"{entry}; fix the file.")
    items = load_decathlon_datalist(datalist, is_segmentation=True, data_list_key=key)
    for i, item in enumerate(items):
        for k in keys:
            if k not in item:
                raise DatalistError(f"Entry {i} of '{key}' in datalist {datalist} has no '{k}' path: {item}.")
            if not os.path.exists(item[k]):
                raise DatalistError(
                    f"Entry {i} of '{key}' in datalist {datalist} names a {k} that does not exist: {item[k]}. "
                    f"Paths are relative to the datalist's folder; fix the path or the file."
                )
    return items


def inference_inputs(
    datalist: str | os.PathLike | Sequence[str | os.PathLike],
    key: str = "testing",
    bundle_name: str | None = None,
) -> list[str]:
    """The inputs ``inference.json`` segments, from its ``datalist`` key in any form the command line gives it.

    * a list or tuple (``--datalist "['ct.nii.gz', '/scans/series']"``): each entry is one input, as given;
    * a datalist JSON file (a path ending in ``.json``; the configs' default ``<dataset_dir>/datalist.json``):
      the ``image`` paths of its ``key`` list, relative to the datalist's folder (see :func:`load_datalist`);
    * any other single path (``--datalist ct.nii.gz``, ``--datalist /scans/series``): one input, a file or a
      DICOM series folder (without this, the configs' ``for i in @datalist`` would read a string character by
      character).

    Returns:
        the input paths as strings. Raises :class:`DatalistError` for a datalist file that is missing or
        malformed, and for an entry that is neither a path nor a list of paths.
    """
    if isinstance(datalist, (str, os.PathLike)):
        path = os.fspath(datalist)
        if path.lower().endswith(".json"):
            items = load_datalist(path, key=key, keys=("image",), bundle_name=bundle_name)
            return [item["image"] for item in items]
        return [path]
    if isinstance(datalist, Sequence) and all(isinstance(p, (str, os.PathLike)) for p in datalist):
        return [os.fspath(p) for p in datalist]
    raise DatalistError(
        f"--datalist must be an input path, a list of input paths or a datalist JSON file, got {datalist!r}. "
        "Pass e.g. --datalist ct.nii.gz or --datalist \"['ct.nii.gz', '/scans/series']\"."
    )


def every_nth(items: Sequence[dict], n: int, complement: bool = False) -> list[dict]:
    """Every ``n``-th entry of ``items`` (indices 0, n, 2n, ...), or with ``complement`` all the others.

    The head-and-neck bundle selects its best checkpoint on every 10th training case and fits the rest, so a
    datalist's ``validation`` list stays unseen until it is reported on (the model-selection split is fixed by
    the datalist's order: ``scripts.prepare_openkbp`` sorts patients by number).
    """
    n = int(n)
    if n < 2:
        raise ValueError(f"every_nth needs n >= 2 (got {n}): n = 1 would leave nothing to fit or select on")
    return [item for i, item in enumerate(items) if (i % n == 0) != complement]


def selection_split(
    datalist: str | os.PathLike, every: int, bundle_name: str | None = None
) -> dict[str, list[dict]]:
    """``{"fitting": [...], "selection": [...]}``: the cases a training run fits and those it selects its best
    checkpoint on. With ``every`` >= 2 both come from the datalist's ``training`` list (:func:`every_nth`: every
    ``every``-th case is for selection), so its ``validation`` list stays unseen; with ``every`` 0 the whole
    ``training`` list is fitted and the ``validation`` list selects. Only the lists used are read, so an
    evaluation of the selection cases needs no other list."""
    training = load_datalist(datalist, "training", bundle_name=bundle_name)
    if not every:
        return {"fitting": training, "selection": load_datalist(datalist, "validation", bundle_name=bundle_name)}
    return {"fitting": every_nth(training, every, complement=True), "selection": every_nth(training, every)}
