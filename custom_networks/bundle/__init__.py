"""What a bundle needs around its networks at run time: where the bundle lives (:mod:`.root`), its datalists
(:mod:`.datalist`), its trained weights (:mod:`.weights`: the one checkpoint reader and ``require_weights``), compressed
weights read into the configured network (:mod:`.compressed_weights`) and the two-stage pipeline's weights across its
training steps (:mod:`.two_stage_weights`).

The configs call these as ``$custom_networks.bundle.<module>.<function>(...)``. ``bundle`` imports
:mod:`custom_networks.writers` (atomic writes), :mod:`custom_networks.ops` and the standard stack (torch-pruning only
to read channel-pruned weights), never the networks.
"""
