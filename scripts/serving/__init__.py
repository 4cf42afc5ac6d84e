"""MONAI Label serving: the dedicated environment (``env``) and the app folder (``app``); CLI in ``scripts.serve``."""
