"""Serve this repo's bundles to annotators with a local MONAI Label 0.8.5 server, offline.

    python -m scripts.serve setup                                # once: creates .venv-monailabel/ (pinned)
    python -m scripts.serve --studies DIR                        # every bundle on http://127.0.0.1:8000
    python -m scripts.serve --studies DIR --bundles knee_eas_unet,lower_limb_afu_unet --port 8001
    python -m scripts.serve load_test --requests 20 --inputs knee_eas_unet=mr.nii.gz,lower_limb_afu_unet=ct.nii.gz

``serve`` builds a MONAI Label app folder (``--app_dir``, default ``monailabel_app/`` at the repo root) from the
``monaibundle`` sample app shipped in the monailabel wheel, puts each bundle there as ``model/<name>``
(configs, docs, LICENSE, ``models/model.pt``, the vendored ``custom_networks``; see ``scripts/serving/app.py``),
and replaces itself with ``monailabel start_server`` run by the dedicated venv's python, bound to
``--host`` (127.0.0.1 unless you choose otherwise). No model zoo download, no SAM weights.

Images are the top-level ``*.nii.gz``/``*.nii``/``*.nrrd`` of ``--studies``; labels saved by clients (and used
by ``/train/``) go to ``DIR/labels/final/``. Weights trained through MONAI Label are written into the app
folder's ``model/<name>/models/model.pt``; the next ``serve`` moves them to ``<app>/trained/<name>/`` before
serving the repo's weights again.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import fire

from scripts.common.bundles import REPO, UnknownBundleError, as_list, check, names

from .serving import app as serving_app
from .serving import env as serving_env

DEFAULT_APP_DIR = REPO / "monailabel_app"


class ServeError(RuntimeError):
    """Something that stops the server from starting; the message names the fix."""


def parse_bundles(bundles) -> list[str]:
    """``None`` (all), ``"a,b"`` or a sequence (fire turns ``a,b`` into a tuple) -> list of valid names."""
    if bundles is None or bundles == "":
        return names()
    return [check(n) for n in as_list(bundles)]


def parse_overrides(override) -> dict:
    """``{"<bundle>": {"key#path": value}}`` given as a dict or a JSON string."""
    if not override:
        return {}
    if isinstance(override, str):
        try:
            override = json.loads(override)
        except json.JSONDecodeError as e:
            raise ServeError(f"--override is not JSON ({e}); example: "
                             "--override '{\"knee_eas_unet\": {\"network_def#features\": [4, 8, 16, 32, 64]}}'") from None
    if not isinstance(override, dict) or not all(isinstance(v, dict) for v in override.values()):
        raise ServeError("--override must map bundle names to {\"key#path\": value} dicts.")
    return override


def check_port(host: str, port: int) -> None:
    """Fail if ``host:port`` cannot be bound (another server, often an earlier MONAI Label, holds it).

    ``SO_REUSEADDR``, as uvicorn binds: connections a stopped server closed (TIME-WAIT, about a minute) must not
    stop it from starting again on its port; a server still listening there does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as e:
            raise ServeError(f"port {port} on {host} is not free ({e.strerror}); stop the process using it "
                             f"(an earlier server? `ss -ltnp | grep :{port}`) or pass --port N.") from None


def server_command(python: Path, app_dir: Path, studies: Path, bundles: list[str], host: str, port: int) -> list[str]:
    """The ``monailabel start_server`` command line: local bundles only, no zoo, no SAM."""
    return [str(python), "-m", "monailabel.main", "start_server", "--app", str(app_dir), "--studies", str(studies),
            "--host", host, "--port", str(port), "--conf", "models", ",".join(bundles),
            "--conf", "zoo_source", "github", "--conf", "sam2", "false", "--conf", "preload", "false"]


def server_env() -> dict:
    """This environment without the main venv's PYTHONPATH / VIRTUAL_ENV, so the server imports only its own venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.setdefault("OMP_NUM_THREADS", str(min(os.cpu_count() or 1, 8)))
    return env


def prepare(studies: str, bundles=None, port: int = 8000, host: str = "127.0.0.1",
            app_dir: str | Path = DEFAULT_APP_DIR, override=None, ckpt_root: str | None = None,
            venv: str | Path = serving_env.VENV) -> list[str]:
    """Check everything, build the app folder, and return the server command (what ``serve`` runs)."""
    python = serving_env.require(venv)
    studies_dir = serving_app.check_studies(studies)
    names = parse_bundles(bundles)
    check_port(host, port)
    app = serving_app.build_app(app_dir, names, Path(venv), parse_overrides(override), ckpt_root)
    return server_command(python, app, studies_dir, names, host, port)


def serve(studies: str | None = None, bundles=None, port: int = 8000, host: str = "127.0.0.1",
          app_dir: str = str(DEFAULT_APP_DIR), override=None, ckpt_root: str | None = None,
          venv: str = str(serving_env.VENV), dry_run: bool = False) -> None:
    """Start a MONAI Label server on ``host:port`` serving ``bundles`` (default: all) on the images in ``studies``.

    Args:
        studies: folder of images (NIfTI/NRRD, top level); labels go to ``studies/labels/final``.
        bundles: comma-separated bundle names (default: every bundle of the repo).
        port: TCP port (default 8000, MONAI Label's and 3D Slicer's default).
        host: address to bind; 127.0.0.1 keeps the server on this machine (0.0.0.0 exposes it on the network).
        app_dir: the MONAI Label app folder to build or refresh (default ``monailabel_app/`` at the repo root).
        override: ``{"<bundle>": {"key#path": value}}`` written into the app's copies of that bundle's configs.
        ckpt_root: take weights from ``<ckpt_root>/<bundle>/model.pt`` instead of ``bundles/<bundle>/models/``.
        venv: the MONAI Label environment (made by ``python -m scripts.serve setup``).
        dry_run: build the app folder and print the command without starting the server.
    """
    if studies is None:
        sys.exit("error: pass --studies DIR (a folder of NIfTI/NRRD images), e.g. python -m scripts.serve --studies "
                 "~/scans; first time: python -m scripts.serve setup")
    try:
        cmd = prepare(studies, bundles, port, host, app_dir, override, ckpt_root, venv)
    except (ServeError, serving_env.EnvironmentMissing, serving_app.AppError, UnknownBundleError,
            FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    url, app = f"http://{host}:{port}", cmd[cmd.index("--app") + 1]
    print(f"MONAI Label app folder: {app} (server log: {app}/logs/app.log)\n"
          f"bundles: {cmd[cmd.index('models') + 1]}\n"
          f"server: {url}/  ({url}/info/ lists the models and labels, {url}/docs/ is the API)\n"
          f"3D Slicer: MONAI Label module, server {url}, then refresh\n+ " + " ".join(cmd), flush=True)
    if dry_run:
        return
    os.execve(cmd[0], cmd, server_env())


def setup(force: bool = False) -> None:
    """Create ``.venv-monailabel/`` (pinned, see scripts/serving/requirements-monailabel.txt); a no-op when current."""
    serving_env.setup(force=force)


def load_test(url: str = "http://127.0.0.1:8000", inputs=None, requests: int = 20, workers: int = 20,
              timeout: float = 600, crop: str = "32,32,4", malformed: bool = True) -> None:
    """Send ``requests`` concurrent ``/infer`` requests to a running server and print failures and latencies.

    Args:
        url: the running server.
        inputs: ``bundle=volume[,bundle=volume...]``; requests take them in turn, each uploading its own crop
            (a shape and origin no other request has), and each answer must be a label map in its crop's geometry.
        requests: number of requests, all submitted at once.
        workers: client threads.
        timeout: seconds one request may take (they queue on the server, so allow for all of them).
        crop: smallest crop in voxels, ``x,y,z``; crop ``i`` is ``i`` voxels larger along x and y.
        malformed: afterwards send four malformed requests (each must get an HTTP error) and one good one.
    """
    from .serving import load_test as lt

    if isinstance(malformed, str):  # fire passes --malformed false as the string "false"
        malformed = malformed.strip().lower() not in ("false", "0", "no", "off", "")
    try:
        bad = lt.load_test(url, inputs, requests, workers, timeout, crop, malformed)
    except ValueError as e:
        sys.exit(f"error: {e}")
    sys.exit(1 if bad else 0)


def main(argv: list[str] | None = None) -> None:
    """``setup`` creates the environment, ``load_test`` measures a running server; anything else starts one."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["setup"]:
        fire.Fire(setup, command=argv[1:], name="scripts.serve setup")
    elif argv[:1] == ["load_test"]:
        fire.Fire(load_test, command=argv[1:], name="scripts.serve load_test")
    else:
        fire.Fire(serve, command=argv, name="scripts.serve")


if __name__ == "__main__":
    main()
