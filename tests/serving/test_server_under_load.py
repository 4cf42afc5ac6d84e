"""MONAI Label under load: 20 concurrent ``/infer`` requests for two bundles, then malformed requests.

One server for the module (``python -m scripts.serve``, the knee MR bundle and the lower-limb CT bundle at tiny
widths with random weights, as in test_monailabel_server.py). Every request sends its own crop of a real
volume (TotalSegmentator's 3 mm MR or CT): crop ``i`` has a shape and an origin no other request has, half of
them named by image id from the datastore, half uploaded, so an answer given to the wrong request fails the
check that the returned label map has its own input's shape and affine. The figures (failures, latency
p50/p90/max, wall time) are printed (``-s`` or not); ``python -m scripts.serve load_test`` measures the same
against any running server. ``GET /info/`` sent during the burst must not wait for it (MONAI Label's own
``/infer`` blocked the event loop; scripts/serving/app_lib.py, point 3): it is answered before most of the burst's
answers (an order of events, not a time limit). Then four malformed requests must each get an HTTP error within a timeout, and
the server must still answer a normal ``/infer`` correctly.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scripts.serving import load_test as lt
from tests.serving.helpers import EXAMPLES, expected_labels, http, report, require_server_prerequisites, running_server, tail

pytestmark = pytest.mark.slow

#: bundle -> the real volume its requests crop
INPUTS = {"knee_eas_unet": EXAMPLES / "example_mr_sm.nii.gz", "lower_limb_afu_unet": EXAMPLES / "example_ct.nii.gz"}
REQUESTS = 20
WORKERS = 20
#: per request; they queue behind each other on the server
INFER_TIMEOUT_S = 300
MALFORMED_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def load_server(request, tmp_path_factory):
    """The server, and 20 jobs: per bundle 10 crops, the even ones placed in the studies folder (asked for by id)."""
    require_server_prerequisites()
    tmp = tmp_path_factory.mktemp("monailabel_load")
    studies, crops = tmp / "studies", tmp / "crops"
    studies.mkdir()
    per_bundle = REQUESTS // len(INPUTS)
    jobs = []
    for bundle, volume in INPUTS.items():
        for i, path in enumerate(lt.crop_variants(volume, per_bundle, crops, bundle)):
            if i % 2 == 0:
                shutil.copyfile(path, studies / path.name)
                jobs.append(lt.Job(bundle, path, image_id=path.name.removesuffix(".nii.gz")))
            else:
                jobs.append(lt.Job(bundle, path))
    jobs = [j for pair in zip(jobs[:per_bundle], jobs[per_bundle:]) for j in pair]  # bundles interleaved
    with running_server(request, tmp, studies, list(INPUTS)) as srv:
        srv.jobs = jobs
        yield srv


def _written_since(path: Path, since: float, contents: set[bytes]) -> bool:
    try:
        return path.stat().st_mtime >= since - 1 and path.read_bytes() in contents
    except OSError:  # deleted meanwhile
        return False


def test_the_inputs_are_distinguishable(load_server):
    geometries = {(nib.load(j.path).shape, tuple(np.round(nib.load(j.path).affine, 3).ravel())) for j in load_server.jobs}
    assert len(load_server.jobs) == REQUESTS and len(geometries) == REQUESTS
    assert sum(j.image_id is not None for j in load_server.jobs) == REQUESTS // 2


def test_concurrent_infer_answers_every_request_with_its_own_geometry(load_server, request, monkeypatch):
    answers: list[tuple[float, str]] = []  # (time, "infer" or "info") of every answer
    info: dict = {}
    first_infer = threading.Event()
    run_job = lt.run_job

    def timed_job(url, job, timeout=600):
        result = run_job(url, job, timeout)
        answers.append((time.perf_counter(), "infer"))
        first_infer.set()
        return result

    def probe_info():  # a GET /info/ once the first /infer is answered, while the others still run
        first_infer.wait(INFER_TIMEOUT_S)
        start = time.perf_counter()
        try:
            http(f"{load_server.url}/info/", timeout=INFER_TIMEOUT_S * 2)
            answers.append((time.perf_counter(), "info"))
            info["s"] = answers[-1][0] - start
        except OSError as e:
            info["error"] = repr(e)

    monkeypatch.setattr(lt, "run_job", timed_job)  # run_load's workers call it by name
    prober = threading.Thread(target=probe_info, daemon=True)
    prober.start()
    results, wall = lt.run_load(load_server.url, load_server.jobs, workers=WORKERS, timeout=INFER_TIMEOUT_S)
    prober.join(timeout=INFER_TIMEOUT_S)
    s = lt.summary(results, wall)
    report(request, f"{REQUESTS} concurrent /infer requests (10 by image id, 10 uploaded):\n" + lt.format_table(s, WORKERS))
    report(request, "latencies, in order: " + " ".join(f"{r.seconds:.1f}" for r in sorted(results, key=lambda r: r.seconds)))
    order = [what for _, what in sorted(answers)]
    report(request, f"GET /info/ sent after the first /infer answer answered after {info.get('s', float('nan')):.2f} s, "
                    f"before {order[order.index('info') + 1:].count('infer') if 'info' in order else 0} of the "
                    f"{REQUESTS - 1} other /infer answers {info.get('error', '')}")
    failed = [f"{r.job.bundle} {r.job.path.name} ({'id' if r.job.image_id else 'upload'}): {r.error}"
              for r in results if not r.ok]
    assert not failed, "\n".join(failed) + "\n" + tail(load_server.log)
    for r in results:
        assert r.labels <= {0} | set(expected_labels(r.job.bundle).values()), (r.job.path.name, r.labels)
    # /info/ does not queue behind the burst: the server computes one /infer after another, so at least half of
    # the other answers still come after it (MONAI Label's own endpoint answered it after all of them)
    assert "info" in order and order.count("infer") == REQUESTS, info
    assert order[order.index("info") + 1:].count("infer") >= REQUESTS // 2, f"GET /info/ waited for the burst: {order}"
    assert load_server.proc.poll() is None


def test_malformed_requests_get_http_errors_and_the_server_keeps_answering(load_server, request):
    bundle, volume = "knee_eas_unet", next(j.path for j in load_server.jobs if j.bundle == "knee_eas_unet")
    before = time.time()
    probes = lt.malformed_requests(load_server.url, bundle, volume, timeout=MALFORMED_TIMEOUT_S)
    report(request, "malformed requests:\n" + lt.format_probes(probes))
    for p in probes:
        assert p.is_http_error, f"{p.name}: {p.status} {p.detail}\n{tail(load_server.log)}"
    # the uploads of failed requests are deleted (monailabel's endpoint left them in the temp folder)
    sent = {b"this is not an image\n", volume.read_bytes()}
    assert not [f for f in Path(tempfile.gettempdir()).glob("tmp*.nii.gz") if _written_since(f, before, sent)]
    assert load_server.proc.poll() is None, tail(load_server.log)
    for job in (next(j for j in load_server.jobs if j.bundle == b and j.image_id is None) for b in INPUTS):
        after = lt.run_job(load_server.url, job, timeout=INFER_TIMEOUT_S)
        assert after.ok, f"{job.bundle} after the malformed requests: {after.error}\n{tail(load_server.log)}"
    assert set(json.loads(http(f"{load_server.url}/info/"))["models"]) == set(INPUTS)
