"""What the widgets show, kept apart from them: observable state, the bridge from engine jobs
to Qt, reads of the project off the GUI thread, the engine's words for a window user."""
