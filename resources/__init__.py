"""MyCanvas Studio's read-only files (model profiles, prompts, the report template, tiny-model
configs, the sample photos, the icon), installed as this package's data.

The source tree keeps them in its top-level resources/ folder; the wheel maps that folder to
the package `mycanvas_resources`. Code finds them through engine.paths.RESOURCES.
"""
