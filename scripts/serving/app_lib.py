"""Copied by ``scripts.serve`` into the MONAI Label app as ``lib/medseg.py``; runs in ``.venv-monailabel``.

The app's ``main.py`` (the monaibundle sample's) imports ``BundleInferTask`` from here instead of from
``monailabel.tasks.infer.bundle``. Three fixes for monailabel 0.8.5 with monai 1.6.1, all inside the app:

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
4. **Every bundle ran the first bundle's ``custom_networks``.** Each bundle folder vendors its own copy of the
   network package, and MONAI Label's bundle tasks put the folder first on ``sys.path`` whenever they enter a
   bundle (loading it, building its transforms, inferer or training run), then call ``unload_module("scripts")``
   so that the bundle's own ``scripts`` is imported afresh. ``custom_networks`` stayed in ``sys.modules``: the
   first bundle's copy served every bundle, its networks and its transforms. :func:`unload_module` replaces
   MONAI Label's in its bundle inference and training tasks and also swaps in the entering bundle's own
   ``custom_networks`` (:func:`use_bundle_modules`): its modules are imported from its folder on its first
   turn and kept for its later turns, so each bundle keeps one set of module objects (its networks, made when
   the task is loaded, and its transforms, made at the first request, share them).
, made when the server imports this file (``POST /infer/<model>`` is replaced
by :func:`infer_endpoint`; ``monailabel.app`` is untouched when it is not loaded, e.g. in a training process):

3. **One request's inference blocked every other request.** monailabel's ``/infer/{model}`` is an ``async``
   endpoint that runs the whole inference synchronously, on the server's only event loop. During a burst of
   requests nothing else is served (``/info/`` waited for the whole burst), and a finished label map is not sent
   until the loop is free again: with 20 concurrent requests every client got its answer only when all 20 were
   done (p50 = max = the burst's wall time). The replacement is a plain ``def`` endpoint, which FastAPI runs in
   its worker threads; inferences still run one at a time, whichever endpoint asks for them, since every
   ``BundleInferTask`` call holds :data:`INFER_LOCK` (a bundle's task object and transforms are shared by
   all its requests, and 2 CPU cores gain nothing from parallel inferences). Answers go out as each finishes
   and the loop keeps answering ``/info/``. (Measured with ``python -m scripts.serve load_test``, 20 requests
   on 2 busy cores: wall time 25 s -> 5 s warm, as MONAI Label's logged per-request time also fell from
   1.6 s to 0.3 s on the event loop's thread vs. a worker thread, for reasons not pinned down.) Its errors
   say what was wrong: 404 for an unknown model or image id, 400 for a ``params`` field that is not a JSON
   object, 500 with the bundle's message when inference fails (e.g. an upload that is not an image; monailabel
   answered all four with a bare 500 "Internal Server Error"); a failed request's uploaded files are deleted
   too (FastAPI skips the background clean-up on an error).

5. **Compressed weights and the bundle's runtime.** MONAI Label loads ``models/model.pt`` itself, with a non-strict
   ``load_state_dict``, and runs no evaluator handlers, so neither the bundles' checkpoint loader (which reads the
   weights of ``python -m scripts.compress``) nor their ``RuntimeHandler`` (``runtime``: OpenVINO on a CPU by
   default) took part: a quantized checkpoint loaded as nothing (its int8 codes are keys the network lacks), a
   channel-pruned one failed, and every bundle ran in torch. Each task's network now reads compressed
   checkpoints (the same function as the loader) and runs in the bundle's ``runtime`` with its ``runtime_parts``
   (:func:`bundle_runtime`); the environment has OpenVINO, ONNX Runtime, onnx and torch-pruning for it.
"""

import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import threading
import types
from typing import Optional


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
from monailabel.tasks.train import bundle as _train_bundle  # noqa: E402
from monailabel.utils.others import class_utils as _class_utils  # noqa: E402

#: packages every bundle folder brings its own copy of (point 4); MONAI Label itself drops ``scripts``
VENDORED_PACKAGES = ("custom_networks",)
#: (package, bundle folder) -> the modules of that package imported from that folder
_VENDORED: dict = {}


def use_bundle_modules(bundle_dir: str) -> None:
    """Make ``sys.modules`` hold ``bundle_dir``'s own copy of :data:`VENDORED_PACKAGES` (module doc, point 4).

    The modules present now are kept under the folder they were imported from and removed; the ones
    ``bundle_dir`` imported on an earlier turn are put back. On its first turn there are none, and the next
    import finds the package in ``bundle_dir``, which MONAI Label has put first on ``sys.path``."""
    target = os.path.realpath(bundle_dir)
    for package in VENDORED_PACKAGES:
        loaded = {name: module for name, module in sys.modules.items()
                  if name == package or name.startswith(package + ".")}
        for name in loaded:
            del sys.modules[name]
        top = getattr(loaded.get(package), "__file__", None)
        if top:  # <folder>/<package>/__init__.py
            _VENDORED[(package, os.path.dirname(os.path.dirname(os.path.realpath(top))))] = loaded
        sys.modules.update(_VENDORED.get((package, target), {}))


def unload_module(name: str) -> None:
    """MONAI Label's ``unload_module``, where its bundle tasks call it: right after putting the bundle's folder
    first on ``sys.path`` (``sys.path[0]``), each time they enter the bundle. Also swaps in that bundle's own
    vendored packages (:func:`use_bundle_modules`)."""
    _class_utils.unload_module(name)
    use_bundle_modules(sys.path[0])


for _module in (_bundle, _train_bundle):
    if not callable(getattr(_module, "unload_module", None)):
        raise ImportError(f"{_module.__name__} has no unload_module: not the monailabel 0.8.5 this app was written "
                          "for; rebuild the environment: python -m scripts.serve setup --force")
    _module.unload_module = unload_module


#: held by every inference (see the module doc, point 3); re-entrant in case a task calls another
INFER_LOCK = threading.RLock()


def bundle_runtime(task):
    """Point 5 for a task just loaded: its network reads compressed checkpoints, and the bundle's ``runtime`` (with
    ``runtime_parts``) as a ``RuntimeHandler`` of the bundle's own ``custom_networks``, or None (torch)."""
    try:  # this bundle's vendored copy: MONAI Label's unload_module swapped it in when the task was loaded
        from custom_networks.bundle.compressed_weights import read_compressed
        from custom_networks.engine.runtimes import RuntimeHandler
    except ImportError:  # a bundle that does not vendor this repo's package: MONAI Label's behaviour
        return None
    task.network.register_load_state_dict_pre_hook(read_compressed)  # deep-copied with it into each device's copy
    config = task.bundle_config
    if config.get("runtime") is None:
        return None
    parts = config.get_parsed_content("runtime_parts") if config.get("runtime_parts") is not None else [""]
    return RuntimeHandler(config.get_parsed_content("runtime"), parts=parts)


class BundleInferTask(_bundle.BundleInferTask):
    """MONAI Label's ``BundleInferTask`` with ``image_path`` hidden from the bundle's pre-transforms, one call at a
    time, compressed weights read and the network run in the bundle's ``runtime`` (module doc, point 5)."""

    def __init__(self, path, conf, *args, **kwargs):
        super().__init__(path, conf, *args, **kwargs)
        self.runtime = bundle_runtime(self) if self.valid and self.network is not None else None

    def _get_network(self, device, data):
        network = super()._get_network(device, data)
        return network if self.runtime is None else self.runtime.network_for(network, device)

    def __call__(self, request, callbacks=None):
        with INFER_LOCK:
            return super().__call__(request, callbacks)

    def run_pre_transforms(self, data, transforms):
        path = data.pop("image_path", None)
        try:
            data = super().run_pre_transforms(data, transforms)
        finally:
            if path is not None:
                data["image_path"] = path
        return data


logger = logging.getLogger(__name__)


def _run_background(background_tasks) -> None:
    """Run a failed request's clean-up tasks (deleting its uploaded files), which FastAPI skips on an error."""
    for task in list(getattr(background_tasks, "tasks", [])):
        try:
            task.func(*task.args, **task.kwargs)
        except Exception:  # noqa: BLE001 - best effort
            logger.exception("clean-up after a failed /infer request")


def infer_endpoint():
    """``POST /infer/{model}`` as a threaded endpoint, one inference at a time (module doc, point 3)."""
    from fastapi import Depends, File, Form, HTTPException, UploadFile
    from fastapi.background import BackgroundTasks

    from monailabel.config import settings
    from monailabel.endpoints import infer as infer_api
    from monailabel.endpoints.user.auth import RBAC, User
    from monailabel.interfaces.utils.app import app_instance

    def api_run_inference(
        background_tasks: BackgroundTasks,
        model: str,
        image: str = "",
        session_id: str = "",
        params: str = Form("{}"),
        file: UploadFile = File(None),
        label: UploadFile = File(None),
        output: Optional[infer_api.ResultType] = None,
        user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER)),
    ):
        instance = app_instance()
        models = sorted(instance.info().get("models", {}))
        if model not in models:
            raise HTTPException(status_code=404, detail=f"no model {model!r}; this server has: {', '.join(models)}")
        try:
            parsed = json.loads(params) if params else {}
        except json.JSONDecodeError as e:
            raise HTTPException(status_code=400, detail=f"params is not JSON ({e}); send a JSON object, e.g. {{}}")
        if not isinstance(parsed, dict):
            raise HTTPException(status_code=400, detail=f"params must be a JSON object, not {type(parsed).__name__}")
        if image and not file and not session_id and not instance.datastore().get_image_uri(image):
            raise HTTPException(status_code=404, detail=f"no image {image!r} in the datastore (GET /datastore/ "
                                "lists them); or upload the image as the 'file' form field")
        try:  # the inference itself holds INFER_LOCK (BundleInferTask.__call__)
            return infer_api.run_inference(background_tasks, model, image, session_id, params, file, label, output)
        except HTTPException:
            _run_background(background_tasks)
            raise
        except Exception as e:  # noqa: BLE001 - the bundle's own message goes back to the client
            logger.exception(f"/infer/{model} failed")
            _run_background(background_tasks)
            raise HTTPException(status_code=500, detail=f"{model} failed on this image: {type(e).__name__}: {e}")

    api_run_inference.__doc__ = "Run inference of a model (medseg-bundles: one at a time, off the event loop)."
    return api_run_inference


def patch_infer_route(routers) -> int:
    """Replace ``POST .../infer/{model}`` in each FastAPI router of ``routers`` by :func:`infer_endpoint`.

    With fastapi 0.165 the app serves the routes of monailabel's own ``infer.router`` (``include_router`` keeps
    a reference and notices changes); older versions copied them into the app's router. Returns how many
    routes were replaced.
    """
    from fastapi.routing import APIRoute

    replaced = 0
    for router in routers:
        for i, route in enumerate(router.routes):
            if isinstance(route, APIRoute) and route.path.endswith("/infer/{model}") and "POST" in route.methods:
                router.routes[i] = APIRoute(route.path, infer_endpoint(), methods=["POST"], name=route.name,
                                            summary=route.summary, tags=route.tags, responses=route.responses)
                replaced += 1
        if hasattr(router, "_mark_routes_changed"):
            router._mark_routes_changed()
    return replaced


if "monailabel.app" in sys.modules:  # imported by the server (not by a training subprocess)
    from monailabel.endpoints import infer as _infer_api

    if not patch_infer_route([_infer_api.router, sys.modules["monailabel.app"].app.router]):
        logger.warning("medseg: POST /infer/{model} not found; inference keeps blocking the server's event loop")
