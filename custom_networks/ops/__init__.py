"""Pure helpers that the networks and the transforms share: organ boxes (:mod:`.boxes`), connected components
(:mod:`.components`), config flags read from the command line (:mod:`.flags`) and a network's tracing input
(:mod:`.tracing`).

Everything here is a function of its arguments (tensors, arrays, plain values): no files, no MONAI engines, no
state. ``ops`` imports only torch, numpy, scipy and the standard library, never another part of this package, so
``nets/`` may use it.
"""
