"""Shared by the tests that start a real MONAI Label server (test_monailabel_server.py, test_server_under_load.py).

:func:`running_server` builds the app with ``python -m scripts.serve`` (tiny widths, random weights from
:func:`write_tiny_weights`) in a subprocess of its own process group, waits for ``/info/`` and stops it after.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from scripts.common.bundles import Bundle, names
from scripts.common.registry import tiny
from scripts.serving import env as serving_env
from tests.conftest import PYTHON, REPO, SHARED_DATA, bundle_dir, subprocess_env

EXAMPLES = SHARED_DATA / "totalsegmentator_example"
REQUIRED = os.environ.get("MEDSEG_REQUIRE_MONAILABEL") == "1"
START_TIMEOUT_S = 240

BUNDLES = names()
#: tiny widths (the registry's), the CT at its own 3 mm in-plane instead of 0.8 mm (about 15x fewer pixels per
#: slice; the head-neck bundle still resamples, to 6 mm), and for the knee bundle a one-epoch run that validates
#: and so saves its weights
TINY = {
    "knee_eas_unet": {**tiny("knee_eas_unet"), "slices_per_volume": 2, "val_interval": 1},
    "lower_limb_afu_unet": {**tiny("lower_limb_afu_unet"), "pixdim": [3.0, 3.0, -1]},
    "spine_msr_attention_unet": {**tiny("spine_msr_attention_unet"), "pixdim": [3.0, 3.0, -1]},
    "head_neck_two_stage_unet": {**tiny("head_neck_two_stage_unet", "openkbp"), "pixdim": [6.0, 6.0, 7.5]},
}


def require(condition: bool, reason: str, required: bool = False) -> None:
    if not condition:
        pytest.fail(reason) if required else pytest.skip(reason)


def require_server_prerequisites() -> None:
    """Skip (fail with ``MEDSEG_REQUIRE_MONAILABEL=1``) without the MONAI Label venv; skip without the real volumes."""
    require(serving_env.is_ready(), f"the MONAI Label environment {serving_env.VENV} is absent or incomplete; "
            f"create it with: {serving_env.SETUP_COMMAND}", required=REQUIRED)
    require(EXAMPLES.is_dir(), f"real example volumes not found at {EXAMPLES}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, method: str = "GET", body: dict | None = None, timeout: float = 30) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


def expected_labels(bundle: str) -> dict[str, int]:
    """What MONAI Label should announce: the metadata's class names (one-channel bundles: label value 1)."""
    pred = json.loads((bundle_dir(bundle) / "configs" / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    channels = pred["channel_def"]
    if pred["num_channels"] == 1:
        return {next(iter(channels.values())).lower(): 1}
    return {name.lower(): int(k) for k, name in channels.items() if name.lower() != "background"}


def write_tiny_weights(bundle: str, out: Path) -> Path:
    """Random weights of the tiny network (seed 0) as ``out/<bundle>/model.pt``, ``{"model": state_dict}``."""
    parser = Bundle(bundle).parser(["inference.json"])
    for key, value in TINY[bundle].items():
        if key in parser:
            parser[key] = value
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    path = out / bundle / "model.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": net.state_dict()}, path)
    return path


def report(request, line: str) -> None:
    """A measurement line in pytest's terminal output, also when output is captured."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n[monailabel] {line}", flush=True)


@contextlib.contextmanager
def running_server(request, tmp: Path, studies: Path, bundles: list[str] = BUNDLES):
    """``python -m scripts.serve`` on ``studies`` serving ``bundles`` (tiny, random weights); yields its namespace.

    ``url``, ``info`` (the first ``/info/`` answer), ``log`` (the serve output), ``app`` (the app folder),
    ``studies``, ``proc``. The server's process group is stopped on exit.
    """
    for bundle in bundles:
        write_tiny_weights(bundle, tmp / "ckpt")
    port, log = free_port(), tmp / "serve.log"
    cmd = [PYTHON, "-m", "scripts.serve", "--studies", str(studies), "--app_dir", str(tmp / "app"),
           "--port", str(port), "--bundles", ",".join(bundles),
           "--override", json.dumps({b: TINY[b] for b in bundles}), "--ckpt_root", str(tmp / "ckpt")]
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        info = None
        while time.perf_counter() - start < START_TIMEOUT_S:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode} before answering:\n{tail(log)}")
            try:
                info = json.loads(http(f"{url}/info/", timeout=5))
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        if info is None:
            pytest.fail(f"no answer from {url}/info/ within {START_TIMEOUT_S} s:\n{tail(log)}")
        started = time.perf_counter() - start
        report(request, f"server start (python -m scripts.serve to /info/ answering): {started:.1f} s")
        yield SimpleNamespace(url=url, info=info, log=log, app=tmp / "app", studies=studies, proc=proc)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
