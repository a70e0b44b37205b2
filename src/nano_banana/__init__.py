"""Nano-Banana Studio: exploded views and knolling flat-lays from a text prompt.

SDXL (frozen) plus a structure LoRA, as a library. The CLI, the web studio and
the trainer are thin shells over the public API exported here.
"""

__version__ = "0.1.0"
