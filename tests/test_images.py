"""Photo intake: a corrupt-input corpus built here, normalisation of every mode, batch import
that survives a bad file and leaves the project unchanged by failures."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import InputError
from engine.intake.import_photos import import_photos, import_photos_job
from engine.intake.jobs import ImportPhotosParams
from engine.intake.photos import (
    MAX_PHOTOS_PER_CONCEPT,
    decode_image,
    load_photo,
    read_image_file,
)
from engine.jobs import inline_context
from engine.project import Project

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming huge dimensions, with almost no data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def two_halves(size=(200, 100), left=RED, right=BLUE) -> Image.Image:
    im = Image.new("RGB", size, left)
    im.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return im


def noise(seed: int, size=(96, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))


def exif_rotated_jpeg() -> bytes:
    """Stored 200×100 (red left, blue right), EXIF orientation 6: shown rotated 90° CW."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(two_halves(), "JPEG", quality=95, exif=exif.tobytes())


def palette_png_with_transparency() -> bytes:
    im = Image.new("P", (64, 64), 0)
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    im.paste(1, (0, 0, 32, 64))  # left red
    im.paste(2, (32, 0, 64, 32))  # top right green; bottom right index 0, transparent
    return encoded(im, "PNG", transparency=0)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 64), c) for c in (RED, GREEN, BLUE)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100,
                   loop=0)


def sixteen_bit_grey_png() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (48, 1))
    return encoded(Image.fromarray(ramp), "PNG")


def truncated_jpeg() -> bytes:
    data = encoded(noise(1, (200, 150)), "JPEG", quality=90)
    return data[: len(data) // 2]


CORPUS_BUILDERS = {
    "truncated.jpg": truncated_jpeg,
    "zero.jpg": lambda: b"",
    "text.png": lambda: b"this is not a picture, just some words\n" * 4,
    "bomb.png": lambda: bomb_png(40000, 40000),
    "cmyk.jpg": lambda: encoded(Image.new("CMYK", (64, 64), (255, 0, 0, 0)), "JPEG"),
    "grey16.png": sixteen_bit_grey_png,
    "palette.png": palette_png_with_transparency,
    "animated.gif": animated_gif,
    "rotated.jpg": exif_rotated_jpeg,
    "strip.png": lambda: encoded(Image.new("RGB", (1, 5000), RED), "PNG"),
    "photo.heic": lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
}
FAILS = {
    "truncated.jpg": "truncated",
    "zero.jpg": "empty file",
    "text.png": "not an image",
    "bomb.png": "image too large: 40000×40000 pixels exceeds the 64-megapixel limit",
    "strip.png": "image too small: 1×5000",
    "photo.heic": "unsupported format .heic (install pillow-heif)",
}


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "corpus"
    folder.mkdir()
    out = {}
    for name, build in CORPUS_BUILDERS.items():
        (folder / name).write_bytes(build())
        out[name] = folder / name
    return out


@pytest.fixture
def project(tmp_path: Path):
    with Project.create(tmp_path / "proj", "Intake") as proj:
        yield proj


def project_state(project: Project) -> tuple[dict, list[str]]:
    files = sorted(str(p.relative_to(project.root)) for p in (project.root / "files").rglob("*")
                   if p.is_file())
    return project.summary(), files


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("name", sorted(FAILS))
def test_bad_files_fail_with_their_name_and_reason(corpus, name):
    with pytest.raises(InputError) as info:
        read_image_file(corpus[name])
    message = str(info.value)
    assert message.startswith(f"{name}: "), message
    assert FAILS[name] in message
    assert "\n" not in message


def test_exif_orientation_is_applied(corpus):
    _, image = read_image_file(corpus["rotated.jpg"])
    assert image.size == (100, 200)  # upright: portrait
    px = np.asarray(image.rgb).astype(int)
    assert np.abs(px[20, 50] - RED).max() < 40  # the stored left (red) is now the top
    assert np.abs(px[180, 50] - BLUE).max() < 40
    assert any("EXIF" in note for note in image.notes)


def test_cmyk_jpeg_becomes_rgb_with_its_colour(corpus):
    _, image = read_image_file(corpus["cmyk.jpg"])
    assert image.rgb.mode == "RGB" and image.alpha is None
    assert np.abs(np.asarray(image.rgb)[32, 32].astype(int) - (0, 255, 255)).max() < 10


def test_sixteen_bit_grey_is_scaled_not_clamped(corpus):
    _, image = read_image_file(corpus["grey16.png"])
    row = np.asarray(image.rgb)[10, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[32] - round(32 / 63 * 255)) <= 1  # mid-range stays mid-grey
    assert np.all(np.diff(row) >= 0) and len(set(row.tolist())) > 50


def test_sixteen_bit_colour_png_keeps_its_colour():
    import cv2

    bgr16 = np.zeros((40, 40, 3), np.uint16)
    bgr16[..., 2] = 65535  # red channel full
    bgr16[..., 1] = 32896  # green at half
    ok, data = cv2.imencode(".png", bgr16)
    assert ok
    image = decode_image(data.tobytes(), "colour16.png")
    assert image.rgb.getpixel((5, 5)) == (255, 128, 0)


def test_palette_transparency_becomes_alpha(corpus):
    _, image = read_image_file(corpus["palette.png"])
    assert image.alpha is not None
    assert image.rgb.getpixel((10, 10)) == RED and image.alpha.getpixel((10, 10)) == 255
    assert image.rgb.getpixel((50, 10)) == GREEN
    assert image.alpha.getpixel((50, 50)) == 0
    assert image.rgb_on_white().getpixel((50, 50)) == (255, 255, 255)


@pytest.mark.parametrize("mode,fmt", [("LA", "PNG"), ("RGBA", "PNG"), ("RGBA", "WEBP"),
                                      ("LA", "TIFF")])
def test_alpha_modes_keep_alpha(mode, fmt):
    base = Image.new("RGBA", (40, 40), (0, 0, 255, 255))
    base.paste((0, 0, 255, 0), (0, 0, 20, 40))
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    image = decode_image(encoded(base.convert(mode), fmt, **kwargs), f"{mode}.{fmt.lower()}")
    assert image.alpha is not None
    assert image.alpha.getpixel((5, 5)) == 0 and image.alpha.getpixel((30, 5)) == 255


def test_opaque_alpha_is_dropped():
    image = decode_image(encoded(Image.new("RGBA", (40, 40), (1, 2, 3, 255)), "PNG"), "a.png")
    assert image.alpha is None and image.rgb.getpixel((0, 0)) == (1, 2, 3)


def test_animated_gif_gives_its_first_frame(corpus):
    _, image = read_image_file(corpus["animated.gif"])
    assert image.frames == 3 and image.rgb.getpixel((10, 10)) == RED
    assert any("the first is used" in note for note in image.notes)


@pytest.mark.parametrize("fmt,ext", [("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff"),
                                     ("PNG", "png"), ("JPEG", "jpg")])
def test_allowed_formats_decode(fmt, ext):
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    image = decode_image(encoded(two_halves(), fmt, **kwargs), f"x.{ext}")
    assert image.size == (200, 100) and image.format == fmt
    assert np.abs(np.asarray(image.rgb)[50, 20].astype(int) - RED).max() < 30


@pytest.mark.parametrize("mode", ["1", "L", "I", "F", "YCbCr", "LAB"])
def test_every_mode_comes_out_rgb(mode):
    im = two_halves(left=(200, 200, 200), right=(20, 20, 20))
    if mode in ("I", "F"):
        im = im.convert("L").convert(mode)
        data = encoded(im, "TIFF")
    elif mode in ("LAB", "YCbCr"):
        data = encoded(im.convert(mode), "TIFF" if mode != "YCbCr" else "JPEG")
    else:
        data = encoded(im.convert(mode), "PNG")
    image = decode_image(data, f"{mode}.img")
    assert image.rgb.mode == "RGB" and image.size == (200, 100)
    left, right = np.asarray(image.rgb)[50, 20].mean(), np.asarray(image.rgb)[50, 180].mean()
    assert left > right + 100  # light stays lighter than dark, whatever the range


def test_formats_outside_the_allow_list_are_refused():
    data = encoded(two_halves(), "PPM")
    with pytest.raises(InputError, match=r"^x\.ppm: not an image"):
        decode_image(data, "x.ppm")


# --------------------------------------------------------------------------- importing


def test_corpus_import_keeps_the_good_and_names_the_bad(project, corpus):
    concept = project.add_concept("Mochi", "cat")
    report = import_photos(project, concept.id, list(corpus.values()))
    imported = {p.original_name for p in report.imported}
    assert imported == set(CORPUS_BUILDERS) - set(FAILS)
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert set(failed) == set(FAILS)
    for name, reason in failed.items():
        assert reason.startswith(f"{name}: ") and FAILS[name] in reason
    rotated = next(p for p in report.imported if p.original_name == "rotated.jpg")
    assert (rotated.width, rotated.height) == (100, 200)
    # Originals are stored untouched and named by their content hash.
    stored = project.abspath(rotated.file)
    assert stored.read_bytes() == corpus["rotated.jpg"].read_bytes()
    assert rotated.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert stored.suffix == ".jpg"
    upright = load_photo(project, rotated)
    assert upright.size == (100, 200)


def test_failures_leave_the_project_unchanged(project, corpus):
    concept = project.add_concept("Mochi", "cat")
    before = project_state(project)
    report = import_photos(project, concept.id, [corpus[name] for name in FAILS])
    assert not report.imported and len(report.failed) == len(FAILS)
    assert project_state(project) == before


def test_a_batch_of_twenty_with_one_bad_file_imports_nineteen(project, tmp_path):
    concept = project.add_concept("Cactus", "cactus")
    paths = []
    for i in range(20):
        path = tmp_path / f"photo{i:02d}.png"
        path.write_bytes(encoded(noise(i), "PNG") if i != 7 else b"\x89PNG\r\n\x1a\nbroken")
        paths.append(path)
    report = import_photos(project, concept.id, paths)
    assert len(report.imported) == 19
    assert [Path(f.path).name for f in report.failed] == ["photo07.png"]
    assert report.failed[0].reason.startswith("photo07.png: ")
    assert len(project.photos(concept.id)) == 19


def test_duplicates_are_stored_once(project, tmp_path):
    concept = project.add_concept("Teapot", "teapot")
    a, b = tmp_path / "a.png", tmp_path / "copy of a.png"
    a.write_bytes(encoded(noise(3), "PNG"))
    b.write_bytes(a.read_bytes())
    report = import_photos(project, concept.id, [a, b])
    assert len(report.imported) == 1 and len(report.duplicates) == 1
    assert len(project.photos(concept.id)) == 1
    assert len(project_state(project)[1]) == 1
    again = import_photos(project, concept.id, [a])
    assert not again.imported and len(again.duplicates) == 1


def test_a_concept_takes_at_most_twenty_photos(project, tmp_path):
    concept = project.add_concept("Plant", "plant")
    paths = []
    for i in range(MAX_PHOTOS_PER_CONCEPT + 2):
        path = tmp_path / f"p{i}.png"
        path.write_bytes(encoded(noise(100 + i), "PNG"))
        paths.append(path)
    report = import_photos(project, concept.id, paths)
    assert len(report.imported) == MAX_PHOTOS_PER_CONCEPT
    assert len(report.failed) == 2 and "20 photos" in report.failed[0].reason


def test_the_file_extension_follows_the_content_not_the_name(project, tmp_path):
    concept = project.add_concept("Mug", "mug")
    liar = tmp_path / "actually-a-jpeg.png"
    liar.write_bytes(encoded(noise(5), "JPEG"))
    report = import_photos(project, concept.id, [liar])
    assert report.imported[0].file.endswith(".jpg")


def test_import_job_creates_the_concept_and_reports(project, corpus):
    root = str(project.root)
    project.close()
    events = []
    ctx = inline_context(events.append)
    result = import_photos_job(ctx, ImportPhotosParams(
        project=root, concept="Mochi", paths=[str(corpus["rotated.jpg"]), str(corpus["zero.jpg"])],
        class_word="cat"))
    assert result.created and result.token == "<mochi>"
    assert len(result.imported) == 1 and len(result.failed) == 1
    assert any("zero.jpg" in getattr(e, "text", "") for e in events)


def test_import_job_with_only_bad_files_leaves_no_concept(project, corpus):
    root = str(project.root)
    before = project_state(project)
    project.close()
    result = import_photos_job(inline_context(), ImportPhotosParams(
        project=root, concept="Ghost", paths=[str(corpus["zero.jpg"])], class_word="cat"))
    assert not result.created
    with Project.open(root) as reopened:
        assert reopened.concepts() == []
        assert project_state(reopened) == before


def test_import_job_needs_a_class_word_for_a_new_concept(project, corpus):
    root = str(project.root)
    project.close()
    with pytest.raises(InputError, match="class word"):
        import_photos_job(inline_context(), ImportPhotosParams(
            project=root, concept="Mochi", paths=[str(corpus["rotated.jpg"])]))


def test_an_avif_original_is_kept_untouched(project, tmp_path):
    from engine.intake.photos import readable_formats

    if "AVIF" not in readable_formats():
        pytest.skip("this Pillow reads no AVIF")
    try:
        data = encoded(two_halves(), "AVIF", quality=90)
    except (OSError, KeyError, ValueError):
        pytest.skip("this Pillow writes no AVIF")
    path = tmp_path / "photo.avif"
    path.write_bytes(data)
    concept = project.add_concept("Mug", "mug")
    report = import_photos(project, concept.id, [path])
    (photo,) = report.imported
    assert photo.file.endswith(".avif")
    assert project.abspath(photo.file).read_bytes() == data
    assert load_photo(project, photo).size == (200, 100)


def test_an_embedded_colour_profile_is_applied():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = decode_image(encoded(two_halves(), "PNG", icc_profile=srgb), "profiled.png")
    assert np.abs(np.asarray(image.rgb)[50, 20].astype(int) - RED).max() <= 3


def test_import_job_updates_the_class_word_of_an_existing_concept(project, corpus):
    project.add_concept("Mochi", "kitten")
    root = str(project.root)
    project.close()
    events = []
    result = import_photos_job(inline_context(events.append), ImportPhotosParams(
        project=root, concept="Mochi", paths=[str(corpus["rotated.jpg"])], class_word="cat"))
    assert result.class_word == "cat" and not result.created
    assert any("Class word" in getattr(e, "text", "") for e in events)
