"""Config flags as bools, also when they arrive as text from the command line."""

from __future__ import annotations


def as_bool(value: object, name: str = "flag") -> bool:
    """A config flag as a bool, also when it arrives as text from the command line.

    ``python -m monai.bundle run --save_mesh false`` passes the *string* ``"false"`` (fire only parses Python
    literals such as ``False``), which plain ``bool()`` would read as true. Accepts bools, 0/1 and
    ``true/false/yes/no/on/off`` in any case; anything else is an error naming the flag.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    return bool(value)
