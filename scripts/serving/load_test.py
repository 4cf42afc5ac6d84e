"""Concurrent ``/infer`` requests against a running MONAI Label server, each answer checked against its own input.

    python -m scripts.serve load_test --url http://127.0.0.1:8000 --requests 20 --workers 20 \\
        --inputs knee_eas_unet=scan_mr.nii.gz,lower_limb_afu_unet=scan_ct.nii.gz

Each request uploads its own crop of one of the ``--inputs`` volumes (``bundle=volume``, taken in turn): crop
``i`` of a volume has a shape and an origin no other crop has, so a label map returned for the wrong request
cannot pass the check that its shape and affine equal those of the file that was sent. All requests are
submitted at once from a pool of ``--workers`` threads; the table gives the failures (HTTP errors, timeouts,
answers that are not a label map in the input's geometry), the latency percentiles of the successful ones and
the wall time of the whole burst. ``--malformed`` then sends four bad requests (unknown image id, a text file
uploaded as the image, a params field that is not JSON, an unknown model), each of which must get an HTTP
error, and one good request that must still be answered correctly.

Runs in the main environment (numpy, nibabel); only the standard library talks HTTP. Used by
``tests/serving/test_server_under_load.py``.
"""

from __future__ import annotations

import io
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

#: smallest crop (voxels per axis); crop ``i`` adds ``i`` voxels to the first two axes and starts ``i`` voxels in
DEFAULT_CROP = (32, 32, 4)


@dataclass
class Job:
    """One ``/infer/<bundle>`` request: ``path`` is uploaded, or, with ``image_id``, named from the datastore."""

    bundle: str
    path: Path
    image_id: str | None = None


@dataclass
class Result:
    job: Job
    seconds: float
    status: int | None = None
    error: str | None = None
    shape: tuple | None = None
    labels: set = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.error is None


def crop_variants(source: str | Path, count: int, out_dir: str | Path, prefix: str,
                  crop: tuple = DEFAULT_CROP) -> list[Path]:
    """``count`` crops of ``source`` written as ``out_dir/<prefix>_<i>.nii.gz``, each with its own shape and origin.

    Crop ``i`` is ``crop + (i, i, 0)`` voxels (clipped to the volume) starting at voxel ``(0, i, 0)`` (also
    clipped), so shapes differ while the volume is large enough and origins differ along the second axis. The
    first axis always starts at 0, where a CT's border (air, which the CT bundles check for) is.
    """
    img = nib.load(str(source))
    shape = img.shape[:3]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        size = [min(int(crop[a]) + (i if a < 2 else 0), shape[a]) for a in range(3)]
        start1 = min(i, shape[1] - size[1])
        part = img.slicer[0:size[0], start1:start1 + size[1], 0:size[2]]
        path = out_dir / f"{prefix}_{i:02d}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(part.dataobj), part.affine, part.header), str(path))
        paths.append(path)
    return paths


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post_infer(url: str, model: str, *, image_id: str | None = None, upload: tuple[str, bytes] | None = None,
               params: str = "{}", timeout: float = 600) -> tuple[int, bytes]:
    """``POST {url}/infer/{model}?output=image`` with a multipart body; returns (HTTP status, body).

    HTTP errors are returned, not raised; a timeout or a dropped connection raises (``TimeoutError``/``OSError``).
    """
    query = {"output": "image", **({"image": image_id} if image_id is not None else {})}
    body, ctype = _multipart({"params": params}, {"file": upload} if upload else {})
    req = urllib.request.Request(f"{url.rstrip('/')}/infer/{urllib.parse.quote(model)}?{urllib.parse.urlencode(query)}",
                                 data=body, method="POST", headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check_label_map(body: bytes, source: str | Path, suffix: str = ".nii.gz") -> tuple[tuple, set]:
    """The returned label map's shape and label values; ``ValueError`` unless shape and affine equal ``source``'s."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"label{suffix}"
        path.write_bytes(body)
        try:
            label = nib.load(str(path))
            data = np.asarray(label.dataobj)
        except Exception as e:  # noqa: BLE001 - any unreadable answer is a failed request
            raise ValueError(f"answer is not a readable image ({type(e).__name__}: {e}); starts {body[:200]!r}") from None
        ref = nib.load(str(source))
        if label.shape != ref.shape:
            raise ValueError(f"label map shape {label.shape} != input shape {ref.shape} (another request's answer?)")
        if not np.allclose(label.affine, ref.affine, atol=1e-3):
            raise ValueError(f"label map affine differs from the input's (another request's answer?):\n"
                             f"{np.round(label.affine, 3)}\nvs\n{np.round(ref.affine, 3)}")
        return tuple(label.shape), set(np.unique(data).astype(int).tolist())


def run_job(url: str, job: Job, timeout: float = 600) -> Result:
    start = time.perf_counter()
    try:
        if job.image_id is not None:
            status, body = post_infer(url, job.bundle, image_id=job.image_id, timeout=timeout)
        else:
            status, body = post_infer(url, job.bundle, upload=(job.path.name, job.path.read_bytes()), timeout=timeout)
    except (OSError, socket.timeout) as e:  # TimeoutError, ConnectionError, URLError are OSErrors
        return Result(job, time.perf_counter() - start, error=f"{type(e).__name__}: {e}")
    seconds = time.perf_counter() - start
    if status != 200:
        return Result(job, seconds, status, error=f"HTTP {status}: {body[:500]!r}")
    try:
        shape, labels = check_label_map(body, job.path)
    except ValueError as e:
        return Result(job, seconds, status, error=str(e))
    return Result(job, seconds, status, shape=shape, labels=labels)


def run_load(url: str, jobs: list[Job], workers: int = 20, timeout: float = 600) -> tuple[list[Result], float]:
    """Submit every job at once to a pool of ``workers`` threads; returns the results (in job order) and wall time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        results = list(pool.map(lambda j: run_job(url, j, timeout), jobs))
    return results, time.perf_counter() - start


def summary(results: list[Result], wall: float) -> dict:
    ok = sorted(r.seconds for r in results if r.ok)
    pct = (lambda q: float(np.percentile(ok, q))) if ok else (lambda q: float("nan"))
    return {"requests": len(results), "failures": sum(not r.ok for r in results), "p50_s": pct(50),
            "p90_s": pct(90), "max_s": max(ok) if ok else float("nan"), "wall_s": wall,
            "bundles": sorted({r.job.bundle for r in results})}


def format_table(s: dict, workers: int) -> str:
    rows = [("requests", f"{s['requests']} ({', '.join(s['bundles'])}; {workers} client threads)"),
            ("failures", str(s["failures"])), ("latency p50", f"{s['p50_s']:.2f} s"),
            ("latency p90", f"{s['p90_s']:.2f} s"), ("latency max", f"{s['max_s']:.2f} s"),
            ("wall time", f"{s['wall_s']:.2f} s")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@dataclass
class Probe:
    name: str
    status: int | None
    seconds: float
    detail: str

    @property
    def is_http_error(self) -> bool:
        return self.status is not None and 400 <= self.status < 600


def malformed_requests(url: str, bundle: str, volume: str | Path, timeout: float = 120) -> list[Probe]:
    """Four bad ``/infer`` requests (each should get a 4xx/5xx, not a hang); ``volume`` is a valid image to upload."""
    good = (Path(volume).name, Path(volume).read_bytes())
    cases = [
        ("unknown image id", dict(model=bundle, image_id=f"no_such_study_{uuid.uuid4().hex[:8]}")),
        ("text file uploaded as the image", dict(model=bundle, upload=("not_an_image.nii.gz", b"this is not an image\n"))),
        ("params not JSON", dict(model=bundle, upload=good, params="{not json")),
        ("unknown model", dict(model="no_such_model", upload=good)),
    ]
    probes = []
    for name, kwargs in cases:
        start = time.perf_counter()
        try:
            status, body = post_infer(url, timeout=timeout, **kwargs)
            detail = body[:300].decode(errors="replace")
        except (OSError, socket.timeout) as e:
            status, detail = None, f"{type(e).__name__}: {e}"
        probes.append(Probe(name, status, time.perf_counter() - start, detail))
    return probes


def format_probes(probes: list[Probe]) -> str:
    width = max(len(p.name) for p in probes)
    return "\n".join(f"{p.name:<{width}}  {'HTTP ' + str(p.status) if p.status else 'no answer'} in {p.seconds:.2f} s"
                     f"  {p.detail[:120]!r}" for p in probes)


def parse_inputs(inputs) -> list[tuple[str, Path]]:
    """``"bundle=volume,bundle=volume"`` (or fire's tuple of ``bundle=volume``) -> [(bundle, Path)]."""
    items = inputs.split(",") if isinstance(inputs, str) else list(inputs or [])
    pairs = []
    for item in (i.strip() for i in items if i and i.strip()):
        bundle, sep, path = item.partition("=")
        if not sep or not bundle or not path:
            raise ValueError(f"--inputs item {item!r} is not bundle=volume (e.g. knee_eas_unet=scan.nii.gz)")
        if not Path(path).expanduser().is_file():
            raise ValueError(f"--inputs {bundle}: no file {path}")
        pairs.append((bundle.strip(), Path(path).expanduser()))
    if not pairs:
        raise ValueError("pass --inputs bundle=volume[,bundle=volume...], e.g. --inputs knee_eas_unet=mr.nii.gz")
    return pairs


def upload_jobs(pairs: list[tuple[str, Path]], requests: int, out_dir: Path, crop: tuple = DEFAULT_CROP) -> list[Job]:
    """``requests`` upload jobs, the inputs taken in turn, each on its own crop (see :func:`crop_variants`)."""
    counts = [len(range(k, requests, len(pairs))) for k in range(len(pairs))]
    variants = [crop_variants(path, n, out_dir, f"{k}_{bundle}", crop) for k, ((bundle, path), n) in enumerate(zip(pairs, counts))]
    return [Job(pairs[i % len(pairs)][0], variants[i % len(pairs)][i // len(pairs)]) for i in range(requests)]


def load_test(url: str = "http://127.0.0.1:8000", inputs=None, requests: int = 20, workers: int = 20,
              timeout: float = 600, crop=DEFAULT_CROP, malformed: bool = True) -> int:
    """The CLI (``python -m scripts.serve load_test``); returns the number of failed checks (exit status)."""
    pairs = parse_inputs(inputs)
    crop = tuple(int(c) for c in (crop.split(",") if isinstance(crop, str) else crop))
    with tempfile.TemporaryDirectory(prefix="medseg-load-") as tmp:
        jobs = upload_jobs(pairs, int(requests), Path(tmp), crop)
        print(f"{len(jobs)} concurrent /infer requests to {url} ({workers} threads), each its own crop ...", flush=True)
        results, wall = run_load(url, jobs, int(workers), timeout)
        for r in results:
            if not r.ok:
                print(f"FAILED {r.job.bundle} {r.job.path.name}: {r.error}")
        s = summary(results, wall)
        print(format_table(s, int(workers)))
        bad = s["failures"]
        if malformed:
            probes = malformed_requests(url, pairs[0][0], jobs[0].path, timeout=min(timeout, 120))
            print("malformed requests:\n" + format_probes(probes))
            bad += sum(not p.is_http_error for p in probes)
            after = run_job(url, jobs[0], timeout)
            print(f"normal /infer/{after.job.bundle} afterwards: "
                  f"{'ok' if after.ok else 'FAILED ' + str(after.error)} in {after.seconds:.2f} s")
            bad += not after.ok
    return bad
