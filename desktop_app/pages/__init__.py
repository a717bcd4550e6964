"""The window's pages: one per step of the chain (and the Models and Settings screens)."""
