"""MyCanvas Studio engine: the headless pipeline.

Importing this package is cheap on purpose: it never imports torch, diffusers or Qt.
Heavy modules are imported by the functions that need them.
"""

__version__ = "0.1.0"
