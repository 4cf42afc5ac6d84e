"""The runtime cache of ``runtime auto`` (and the named runtimes): inference never fails where torch alone would
work. An unwritable cache folder, two processes exporting one part at once, a broken cached file and a package
upgrade each still give torch's output."""

from __future__ import annotations

import importlib.metadata
import logging
import multiprocessing
import os

import pytest
import torch

from custom_networks import UNet3D
from custom_networks.runtimes import cache, exported_part
from custom_networks.runtimes.cache import CACHE_ENV, cache_key, configured_cache_dir
from custom_networks.runtimes.exported_part import ExportedPart


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return UNet3D(in_channels=1, out_channels=3, features=(4, 8, 16, 32)).eval()


def _check_like_torch(part: ExportedPart, net: torch.nn.Module) -> None:
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(part(x), net(x), atol=1e-4, rtol=1e-4)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (CACHE_ENV, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cache, "_TEMPORARY", {})
    return monkeypatch


def test_the_cache_folder_is_the_variable_else_xdg_else_home(clean_env, tmp_path):
    clean_env.setenv("HOME", str(tmp_path / "home"))
    assert configured_cache_dir() == tmp_path / "home" / ".cache" / "medseg_bundles" / "runtime"
    clean_env.setenv("XDG_CACHE_HOME", "relative/is/ignored")  # the XDG specification: absolute paths only
    assert configured_cache_dir() == tmp_path / "home" / ".cache" / "medseg_bundles" / "runtime"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert configured_cache_dir() == tmp_path / "xdg" / "medseg_bundles" / "runtime"
    clean_env.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert configured_cache_dir() == tmp_path / "mine"


@pytest.mark.parametrize("where", ["home", CACHE_ENV])
def test_an_unwritable_cache_folder_exports_into_a_temporary_folder_with_a_warning(where, clean_env, tmp_path,
                                                                                    caplog):
    """A home (or ``MEDSEG_RUNTIME_CACHE``) that cannot hold the cache: here a path under a plain file, which even
    root cannot create (a read-only home gave ``FileNotFoundError`` at the first forward)."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    clean_env.setenv("HOME", str(blocker))
    if where == CACHE_ENV:
        clean_env.setenv(CACHE_ENV, str(blocker / "cache"))
    net = _net()
    part = ExportedPart(net, "onnxruntime")
    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        _check_like_torch(part, net)
    assert part.file is not None and part.file.is_file() and blocker not in part.file.parents
    warnings = [r.getMessage() for r in caplog.records if r.name == cache.__name__]
    assert len(warnings) == 1 and CACHE_ENV in warnings[0] and str(part.file.parent) in warnings[0]
    ExportedPart(net, "onnxruntime")(torch.randn(1, 1, 16, 16, 16))  # the same temporary folder, no new warning
    assert len([r for r in caplog.records if r.name == cache.__name__]) == 1


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_cached_file_that_does_not_load_is_exported_again(runtime, tmp_path, caplog):
    net = _net()
    first = ExportedPart(net, runtime, cache_dir=tmp_path)
    _check_like_torch(first, net)
    data = first.file.read_bytes()
    first.file.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk or a copy cut short
    again = ExportedPart(net, runtime, cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger=exported_part.__name__):
        _check_like_torch(again, net)
    assert again.file == first.file and again.file.read_bytes() == data  # the same export, whole again
    assert any("does not load" in r.getMessage() and str(first.file) in r.getMessage() for r in caplog.records)


def test_the_int8_file_is_quantized_again_from_a_broken_float_file(tmp_path):
    net = _net()
    x = torch.randn(2, 1, 16, 16, 16)
    ExportedPart(net, "onnxruntime-int8", cache_dir=tmp_path)(x)
    (fp32,) = [p for p in tmp_path.glob("*.onnx") if not p.name.endswith("_int8.onnx")]
    (int8,) = tmp_path.glob("*_int8.onnx")
    fp32.write_bytes(b"garbage")
    int8.write_bytes(b"garbage")
    part = ExportedPart(net, "onnxruntime-int8", cache_dir=tmp_path)
    assert part(x).shape == (2, 3, 16, 16, 16) and part.file == int8
    assert fp32.stat().st_size > 1000 and int8.stat().st_size > 1000


@pytest.mark.parametrize("package", ["torch", "onnx", "openvino"])
def test_the_cache_key_changes_with_each_package_version(package, monkeypatch, tmp_path):
    before = cache_key("abc", 5)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "999.0" if name == package else real(name))
    assert cache_key("abc", 5) != before
    net = _net()
    part = ExportedPart(net, "onnxruntime", cache_dir=tmp_path)
    _check_like_torch(part, net)
    assert cache_key(part.weights_hash, 5) in part.file.name


def test_runtime_auto_runs_torch_for_a_part_that_cannot_be_exported(monkeypatch, tmp_path, caplog):
    def broken_export(*args, **kwargs):
        raise RuntimeError("this network has an operator ONNX lacks")

    monkeypatch.setattr(exported_part, "export_onnx", broken_export)
    net = _net()
    with pytest.raises(RuntimeError, match="operator ONNX lacks"):
        ExportedPart(net, "openvino", cache_dir=tmp_path)(torch.randn(1, 1, 16, 16, 16))  # asked for by name
    part = ExportedPart(net, "openvino", cache_dir=tmp_path, torch_fallback=True)  # what runtime auto asks for
    with caplog.at_level(logging.WARNING, logger=exported_part.__name__):
        _check_like_torch(part, net)
    assert part.ran == "torch" and part.file is None
    assert any("runs in torch" in r.getMessage() for r in caplog.records)


def _export_then_wait(barrier):
    """``export_onnx`` that, once its file is written, waits until the other process has written its own."""
    real = exported_part.export_onnx

    def export(*args, **kwargs):
        path = real(*args, **kwargs)
        barrier.wait(timeout=300)
        return path

    return export


def _export_at_once(cache_dir: str, barrier) -> None:
    """Child process: export the seed-0 network's part into ``cache_dir`` as PID 1, both exports written before
    either is renamed into place."""
    os.getpid = lambda: 1  # two containers
    exported_part.export_onnx = _export_then_wait(barrier)
    net = _net()
    _check_like_torch(ExportedPart(net, "onnxruntime", cache_dir=cache_dir), net)


def test_two_processes_exporting_the_same_part_at_once_both_run_and_leave_one_whole_file(tmp_path, monkeypatch):
    """This test's process and a child, both as PID 1, export the same part into one folder at the same moment."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch thread pools shared through fork
    barrier = ctx.Barrier(2)
    child = ctx.Process(target=_export_at_once, args=(str(tmp_path), barrier))
    child.start()
    try:
        with monkeypatch.context() as patched:  # not while joining: multiprocessing checks its own PID there
            patched.setattr(os, "getpid", lambda: 1)
            patched.setattr(exported_part, "export_onnx", _export_then_wait(barrier))
            net = _net()
            part = ExportedPart(net, "onnxruntime", cache_dir=tmp_path)
            _check_like_torch(part, net)
    finally:
        child.join(timeout=300)
    assert child.exitcode == 0, "the child's export failed (its traceback is in the captured stderr)"
    assert list(tmp_path.iterdir()) == [part.file]  # one file, no temporary file left
    again = ExportedPart(net, "onnxruntime", cache_dir=tmp_path)
    _check_like_torch(again, net)  # the file they left loads and computes torch's output
