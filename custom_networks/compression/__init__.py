"""Model compression of paper 002's chapter 4 (papers.md 3.7), usable on every network of this repo.

The three thesis steps, each on the previous one's result: structured L1 channel pruning that yields a
smaller dense network (:mod:`.channel_pruning`), magnitude (threshold) pruning made permanent
(:mod:`.threshold_pruning`), and k-level weight quantization with straight-through fine-tuning stored as
int8 codes (:mod:`.quantization`). :mod:`.checkpoint` writes and reads the compressed weights as plain
tensors; every network of this repo reads them through its ``load_state_dict`` (importing this package
registers the hook that does it). :mod:`.onnx` is the one ONNX exporter (also behind ``scripts/export.py``) and
the ONNX Runtime runner; :mod:`.int8` (not a thesis step) quantizes such a file to int8 convolutions.
``compression`` works on the networks of :mod:`custom_networks.nets` and writes through
:mod:`custom_networks.writers`; nothing but the package root imports it.
"""

from . import checkpoint  # noqa: F401  (registers the compressed-checkpoint load hook on every network)
