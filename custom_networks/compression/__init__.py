"""Model compression of chapter 4 of Liu Ting's head-and-neck thesis, usable on every network of this repo.

The three thesis steps, each on the previous one's result: structured L1 channel pruning that yields a
smaller dense network (:mod:`.channel_pruning`), magnitude (threshold) pruning made permanent
(:mod:`.threshold_pruning`), and k-level weight quantization with straight-through fine-tuning stored as
int8 codes (:mod:`.quantization`). :mod:`.checkpoint` writes the compressed weights as plain tensors, which the
checkpoint loaders read back explicitly (:mod:`custom_networks.bundle.compressed_weights`). Running a compressed
network in ONNX Runtime (float32 or int8) or OpenVINO is :mod:`custom_networks.runtimes`' job.
``compression`` imports :mod:`custom_networks.bundle`, :mod:`custom_networks.ops`, :mod:`custom_networks.blocks` and
:mod:`custom_networks.writers` (it may import :mod:`custom_networks.runtimes`, never the reverse); nothing in the
package imports it, so running a bundle never loads torch-pruning.
"""
