"""Runtime helpers that bundle configs call (paths, datalists, input checks, metrics, overlays).

They live in ``custom_networks`` because this package is the only code a bundle zip vendors, so a
config that names ``custom_networks.support.<x>`` runs from the repo, a bundle folder or an extracted zip.
"""
