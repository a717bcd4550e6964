"""MyCanvas Studio's desktop window (PySide6): a view over a project and a launcher of jobs.

Nothing here computes; the engine does. Importing this package does not import Qt.
"""
