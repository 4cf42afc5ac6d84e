"""Copied by ``scripts.serve`` into the MONAI Label app as ``lib/medseg.py``; runs in ``.venv-monailabel``.

The app's ``main.py`` (the monaibundle sample's) imports ``BundleInferTask`` from here instead of from
``monailabel.tasks.infer.bundle``. Two fixes for monailabel 0.8.5 with monai 1.6.1, both inside the app:

1. **No torchvision.** monailabel imports ``torchvision.utils.make_grid, save_image`` at the top of
   ``monailabel/transform/post.py`` (which ``BundleInferTask`` needs), but only calls them in debug-dump
   transforms the monaibundle app never uses. The dedicated environment has no torchvision (the PyPI wheels
   are CUDA builds that fail beside the CPU torch: "operator torchvision::nms does not exist"), so when none
   is installed a placeholder module stands in; it raises if anything calls it or asks it for anything else.
   With a real torchvision installed this does nothing.
2. **``image_path`` during pre-transforms.** MONAI Label puts the request's file path in ``data["image_path"]``;
   monai 1.6's ``Spacingd`` treats every ``image_*`` key as a metadata dict of ``image`` and calls
   ``.update`` on it, so any bundle whose preprocessing resamples (the three CT bundles) fails with
   ``AttributeError: 'str' object has no attribute 'update'``. The path is set aside while the
   pre-transforms run and put back for MONAI Label's writer.
"""

import importlib.machinery
import importlib.util
import sys
import types


def _torchvision_missing(*_args, **_kwargs):
    raise RuntimeError("torchvision is not installed in this MONAI Label environment "
                       "(scripts/serving/requirements-monailabel.txt); install one that matches its torch.")


def _no_attribute(name):
    raise AttributeError(f"torchvision placeholder has no {name!r}: torchvision is not installed")


def install_torchvision_placeholder() -> bool:
    """Register the placeholder ``torchvision`` / ``torchvision.utils`` if no torchvision is installed."""
    if importlib.util.find_spec("torchvision") is not None:
        return False
    tv = types.ModuleType("torchvision")
    tv.__spec__ = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
    tv.__path__ = []
    tv.__version__ = "0+not.installed"  # fails every monai optional_import version check
    tv.__getattr__ = _no_attribute
    tv.utils = types.ModuleType("torchvision.utils")
    tv.utils.make_grid = tv.utils.save_image = _torchvision_missing
    sys.modules.update({"torchvision": tv, "torchvision.utils": tv.utils})
    return True


install_torchvision_placeholder()

from monailabel.tasks.infer import bundle as _bundle  # noqa: E402  (needs the placeholder first)


class BundleInferTask(_bundle.BundleInferTask):
    """MONAI Label's ``BundleInferTask`` with ``image_path`` hidden from the bundle's pre-transforms."""

    def run_pre_transforms(self, data, transforms):
        path = data.pop("image_path", None)
        try:
            data = super().run_pre_transforms(data, transforms)
        finally:
            if path is not None:
                data["image_path"] = path
        return data
