"""Intake: photos of a concept come in safely.

    photos.py          decode, check and normalise an image file (formats, bombs, EXIF,
                       colour profiles, every mode), and `load_photo` for later stages
    import_photos.py   copy checked photos into the project, one report row per file
    jobs.py            the `import-photos` job, declared once

Public API: `decode_image`, `read_image_file`, `load_photo`, `DecodedImage`, `import_photos`,
`IMPORT_PHOTOS`, `FORMAT_EXTENSIONS` (the file extension a stored photo of each format gets).
Importing this package is cheap (PIL is imported when an image is read).
"""

from engine.intake.jobs import IMPORT_PHOTOS, ImportedPhotos, ImportPhotosParams
from engine.intake.photos import (
    FORMAT_EXTENSIONS,
    DecodedImage,
    decode_image,
    load_photo,
    read_image_file,
)

__all__ = ["FORMAT_EXTENSIONS", "IMPORT_PHOTOS", "DecodedImage", "ImportPhotosParams",
           "ImportedPhotos", "decode_image", "load_photo", "read_image_file"]
