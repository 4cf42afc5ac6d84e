"""CPU inference runtimes for every network of this package: the one ONNX exporter, ONNX Runtime, OpenVINO and ONNX
Runtime's int8, each behind the torch network interface, and the cache of exported parts.

One module per job: :mod:`.tensors` (tensors in and out of a runtime), :mod:`.onnx_files` (tensor names, opening a
file), :mod:`.onnx_export` (:func:`~.onnx_export.export_onnx`, also behind ``scripts/export.py``),
:mod:`.onnxruntime_network` and :mod:`.openvino_network` (an ``nn.Module`` per runtime), :mod:`.int8`
(:func:`~.int8.quantize_int8`), :mod:`.selection` (the ``runtime`` names and what ``auto`` picks), :mod:`.cache`
(the cache folder and file names) and :mod:`.exported_part` (:class:`~.exported_part.ExportedPart`: export at the
first call, cached). The evaluator handler that swaps them in is
:class:`custom_networks.engine.runtimes.RuntimeHandler`; :mod:`custom_networks.compression` uses them too.

``runtimes`` imports :mod:`custom_networks.writers` (atomic writes) and the standard stack (torch; onnx,
onnxruntime and openvino where a function needs them), never the networks, ``engine`` or ``compression``.
"""
