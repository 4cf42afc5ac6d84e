"""Model compression of paper 002's chapter 4 (papers.md 3.7), usable on every network of this repo.

The three thesis steps, each on the previous one's result: structured L1 channel pruning that yields a
smaller dense network (:mod:`.channel_pruning`), magnitude (threshold) pruning made permanent
(:mod:`.threshold_pruning`), and k-level weight quantization with straight-through fine-tuning stored as
int8 codes (:mod:`.quantization`). :mod:`.checkpoint` writes and reads the compressed weights as plain
tensors; every network of this repo reads them through its ``load_state_dict``. :mod:`.int8` (not a thesis
step) runs a network in ONNX Runtime with int8 convolutions.
"""
