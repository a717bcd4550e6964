"""Widgets the pages are made of: canvases, lists, forms, bars and panels."""
