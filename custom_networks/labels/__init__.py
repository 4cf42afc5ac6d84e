"""Class lists and class maps: the head-and-neck organ setups (:mod:`.head_neck`, the one list of that bundle's
organs that configs, evaluation and the data tools derive from) and the TotalSegmentator v2 class map with the
label mappings that merge its classes into this repo's (:mod:`.totalsegmentator`).

Pure data and name handling; ``labels`` imports only the standard library.
"""
