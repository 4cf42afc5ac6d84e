"""scripts.serve without a server: the app folder it builds and the errors that stop it before starting.

A fake environment (a folder with a stand-in ``monaibundle`` sample app) is enough here; the real server runs
in test_monailabel_server.py.
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from scripts import serve
from scripts.common.bundles import bundle_files, names
from scripts.common.registry import tiny
from scripts.serving import app as serving_app
from scripts.serving import env as serving_env
from tests.conftest import PYTHON, REPO, subprocess_env


@pytest.fixture
def fake_venv(tmp_path):
    """A folder laid out like a venv with monailabel installed, holding only the sample app's files."""
    sample = tmp_path / "venv" / "monailabel" / "sample-apps" / "monaibundle"
    (sample / "lib" / "infers").mkdir(parents=True)
    (sample / "lib" / "__init__.py").write_text("")
    (sample / "main.py").write_text("import os\n" + serving_app.ORIGINAL_IMPORT + "x = BundleInferTask\n")
    (sample / "requirements.txt").write_text("")
    return tmp_path / "venv"


@pytest.fixture
def ckpt_root(tmp_path):
    """Placeholder weights for every bundle (the app build only copies them)."""
    for bundle in names():
        (tmp_path / "ckpt" / bundle).mkdir(parents=True)
        (tmp_path / "ckpt" / bundle / "model.pt").write_bytes(bundle.encode())
    return tmp_path / "ckpt"


def test_app_holds_each_bundle_like_its_zip_with_the_overrides(tmp_path, fake_venv, ckpt_root):
    overrides = {"knee_eas_unet": {**tiny("knee_eas_unet"), "val_interval": 1}}
    app = serving_app.build_app(tmp_path / "app", ["knee_eas_unet", "lower_limb_afu_unet"], fake_venv, overrides,
                                ckpt_root)
    assert serving_app.PATCHED_IMPORT in (app / "main.py").read_text()
    assert serving_app.ORIGINAL_IMPORT not in (app / "main.py").read_text()
    assert (app / "lib" / "medseg.py").read_text() == serving_app.APP_LIB.read_text()
    knee = app / "model" / "knee_eas_unet"
    expected = {r for r in bundle_files("knee_eas_unet") if r != "models/model.pt"} | {"models/model.pt"}
    assert {p.relative_to(knee).as_posix() for p in knee.rglob("*") if p.is_file()} == expected
    assert (knee / "models" / "model.pt").read_bytes() == b"knee_eas_unet"
    for name in ("inference.json", "train.json"):
        features = json.loads((knee / "configs" / name).read_text())["network_def"]["features"]
        assert features == tiny("knee_eas_unet")["network_def#features"]
    assert json.loads((knee / "configs" / "train.json").read_text())["val_interval"] == 1
    assert json.loads((knee / "configs" / "train.json").read_text()).get("resume", False) is False
    assert "val_interval" not in json.loads((knee / "configs" / "inference.json").read_text())
    # a one-channel bundle announces its class as label 1, what its thresholded label map holds
    meta = json.loads((app / "model" / "lower_limb_afu_unet" / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == {"0": "background", "1": "bone"}
    knee_meta = json.loads((knee / "configs" / "metadata.json").read_text())
    assert knee_meta == json.loads((REPO / "bundles/knee_eas_unet/configs/metadata.json").read_text())


def test_rebuilding_keeps_weights_trained_through_monailabel(tmp_path, fake_venv, ckpt_root):
    app = serving_app.build_app(tmp_path / "app", ["knee_eas_unet"], fake_venv, ckpt_root=ckpt_root)
    (app / "model" / "knee_eas_unet" / "models" / "model.pt").write_bytes(b"trained in MONAI Label")
    serving_app.build_app(tmp_path / "app", ["knee_eas_unet"], fake_venv, ckpt_root=ckpt_root)
    assert (app / "model" / "knee_eas_unet" / "models" / "model.pt").read_bytes() == b"knee_eas_unet"
    kept = list((app / "trained" / "knee_eas_unet").glob("model_*.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"trained in MONAI Label"


def test_unknown_override_key_and_foreign_app_folder_are_refused(tmp_path, fake_venv, ckpt_root):
    with pytest.raises(serving_app.AppError, match="'network_def#featurs'.*no such key"):
        serving_app.build_app(tmp_path / "app", ["knee_eas_unet"], fake_venv,
                              {"knee_eas_unet": {"network_def#featurs": [4]}}, ckpt_root)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(serving_app.AppError, match="was not made by scripts.serve"):
        serving_app.build_app(tmp_path / "mine", ["knee_eas_unet"], fake_venv, ckpt_root=ckpt_root)


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "scripts.serve", *args], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)


def test_command_line_errors_name_the_fix(tmp_path, fake_venv):
    studies = tmp_path / "studies"
    studies.mkdir()
    missing_env = _serve("--studies", str(studies), "--venv", str(tmp_path / "none"))
    assert missing_env.returncode != 0 and serving_env.SETUP_COMMAND in missing_env.stderr
    (fake_venv / "bin").mkdir()
    (fake_venv / "bin" / "python").write_text("")
    (fake_venv / serving_env.MARKER).write_text(serving_env.requirements_digest())
    empty = _serve("--studies", str(studies), "--venv", str(fake_venv))
    assert empty.returncode != 0 and "holds no images" in empty.stderr
    (studies / "a.nii.gz").write_bytes(b"")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    no_weights = _serve("--studies", str(studies), "--venv", str(fake_venv), "--ckpt_root", str(tmp_path / "ckpt"),
                        "--bundles", "knee_eas_unet", "--app_dir", str(tmp_path / "app"), "--port", str(port))
    assert no_weights.returncode != 0 and "no trained weights" in no_weights.stderr
    assert "configs/train.json" in no_weights.stderr
    assert not (tmp_path / "app").exists()


def test_a_port_in_use_is_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(serve.ServeError, match=f"port {s.getsockname()[1]} .*--port"):
            serve.check_port("127.0.0.1", s.getsockname()[1])


def test_a_port_left_in_time_wait_by_a_stopped_server_is_free(tmp_path):
    """Connections the server closed stay in TIME-WAIT on its port for a minute; a restart must not be refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end of the connection goes to TIME-WAIT
        client.close()
    serve.check_port("127.0.0.1", port)


def test_server_command_is_offline_and_local(tmp_path):
    cmd = serve.server_command(tmp_path / "python", tmp_path / "app", tmp_path / "s", ["a", "b"], "127.0.0.1", 8001)
    pairs = dict(zip(cmd[cmd.index("--conf") + 1::3], cmd[cmd.index("--conf") + 2::3]))
    assert pairs == {"models": "a,b", "zoo_source": "github", "sam2": "false", "preload": "false"}
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8001"
    assert serve.parse_bundles("knee_eas_unet, lower_limb_afu_unet") == ["knee_eas_unet", "lower_limb_afu_unet"]
    assert serve.parse_bundles(("knee_eas_unet",)) == ["knee_eas_unet"]
    assert serve.parse_bundles(None) == list(names())
