"""The package is the app: the wheel holds everything the app reads at run time, and installed
outside the checkout (a fresh venv that reuses this environment's dependencies) it runs the
main commands and opens its window, importing only the installed copy.

The wheel and sdist are built from a copy of the checkout's files (the build writes its
egg-info and build/ folders there, never into the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RESOURCES_PACKAGE = "mycanvas_resources"
CACHE_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def _checkout_files() -> list[str]:
    """The checkout's files (tracked, plus new ones git does not ignore), repo-relative."""
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    else:
        names = [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()]
    return sorted(n for n in names if (REPO / n).is_file()
                  and not CACHE_PARTS.intersection(Path(n).parts) and not n.endswith(".pyc"))


def _expected_resources() -> list[str]:
    """Every file of the repository's resources/ folder, as the wheel must hold it."""
    return [f"{RESOURCES_PACKAGE}/{n.removeprefix('resources/')}"
            for n in _checkout_files() if n.startswith("resources/")]


def _expected_packages() -> set[str]:
    return {str(p.parent.relative_to(REPO)).replace(os.sep, ".")
            for top in ("engine", "desktop_app") for p in (REPO / top).rglob("__init__.py")
            if not CACHE_PARTS.intersection(p.parts)}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The wheel and sdist, built (without build isolation: the test environment has the
    build backend; `build` is a test dependency: missing, this fails rather than skips) from a
    copy of the checkout."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    for name in _checkout_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    dist = root / "dist"
    # No --sdist/--wheel: the sdist first, then the wheel from the sdist, so a file missing
    # from the sdist is missing from the wheel too.
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation",
                           "--outdir", str(dist), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheel, = dist.glob("*.whl")
    sdist, = dist.glob("*.tar.gz")
    return {"root": root, "wheel": wheel, "sdist": sdist}


def _bad_member(name: str) -> bool:
    parts = set(Path(name).parts)
    return bool(CACHE_PARTS & parts) or name.endswith((".pyc", ".pyo")) or "tests" in parts


def test_the_wheel_holds_every_resource_and_package_and_no_tests_or_caches(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
        entry_points = next(wheel.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    missing = sorted(set(_expected_resources()) - names)
    assert not missing, f"resources missing from the wheel: {missing}"
    assert f"{RESOURCES_PACKAGE}/profiles.json" in names  # the list above is not empty
    packages = {str(Path(n).parent).replace("/", ".") for n in names
                if n.endswith("/__init__.py")}
    assert _expected_packages() <= packages, sorted(_expected_packages() - packages)
    assert not [n for n in names if _bad_member(n)]
    assert "mycanvas = desktop_app.launcher:main" in entry_points
    assert "[gui_scripts]" in entry_points
    assert "mycanvas-studio = desktop_app.launcher:gui_main" in entry_points


def test_the_sdist_holds_the_sources_and_resources_and_no_tests_or_caches(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    expected = {n.replace(RESOURCES_PACKAGE, "resources", 1) for n in _expected_resources()}
    assert not sorted(expected - names), sorted(expected - names)
    assert {"pyproject.toml", "README.md", "engine/__init__.py"} <= names
    assert not [n for n in names if _bad_member(n)]


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> dict[str, Path]:
    """The wheel installed into a fresh venv that sees this environment's packages."""
    root = built["root"]
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    # --system-site-packages reaches the base interpreter's packages; the test environment may
    # be a venv of its own: its site-packages follow the new venv's, as plain path entries, so
    # none of their .pth files runs (an editable install's finder or path entry of a checkout).
    own_site = subprocess.run([str(python), "-c", "import sysconfig; "
                               "print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    ours = [p for p in site.getsitepackages() if not Path(p).resolve().is_relative_to(REPO)]
    (Path(own_site) / "test-environment.pth").write_text("\n".join(ours) + "\n")
    env = _child_env(bin_dir)
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index",
                           "--disable-pip-version-check", str(built["wheel"])],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    work = tmp_path_factory.mktemp("outside-the-checkout")
    return {"venv": venv, "bin": bin_dir, "python": python, "work": work}


def _child_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}}
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def _run(installed, *argv: str, extra_env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**_child_env(installed["bin"]), **(extra_env or {})}
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env,
                          cwd=installed["work"], timeout=timeout)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


# Runs a command inside the installed app, then says where every module of ours came from.
PROBE = """
import json, os, sys
from desktop_app.launcher import main
code = main(sys.argv[1:])
import engine.paths, desktop_app.main_window  # noqa: F401  (the window's modules too)
ours = ("engine", "desktop_app", "mycanvas_resources")
print("PROBE " + json.dumps({
    "code": code, "env": sorted(os.environ), "resources": str(engine.paths.RESOURCES),
    "modules": {n: getattr(m, "__file__", None) for n, m in sys.modules.items()
                if n.split(".")[0] in ours}}))
"""


def _probe(installed, *argv: str) -> dict:
    done = _run(installed, str(installed["python"]), "-c", PROBE, *argv)
    line = next(x for x in done.stdout.splitlines() if x.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


def test_the_installed_app_runs_its_commands_and_window_from_outside_the_checkout(
        installed, tiny_models):
    from PIL import Image
    from skimage import data

    site = installed["venv"].resolve()
    version = _run(installed, "mycanvas", "--version")
    from engine import __version__
    assert version.stdout.strip() == f"mycanvas {__version__}"
    doctor = _run(installed, "mycanvas", "doctor")
    assert "profile tiny" in doctor.stdout and "profile sd15" in doctor.stdout

    work = installed["work"]
    project = work / "My project"
    _run(installed, "mycanvas", "new", str(project))
    photos = work / "photos"
    photos.mkdir()
    Image.fromarray(data.chelsea()).save(photos / "chelsea.png")
    Image.fromarray(data.coffee()).save(photos / "coffee.jpg")
    _run(installed, "mycanvas", "add-concept", str(project), "Mochi", "--class", "cat",
         str(photos / "chelsea.png"))
    _run(installed, "mycanvas", "add-concept", str(project), "Cup", "--class", "mug",
         str(photos / "coffee.jpg"))

    ran = _probe(installed, "-q", "personalize", str(project), "--preset", "quick",
                 "--profile", "tiny", "--device", "cpu", "--json")
    assert ran["code"] == 0
    # The checkout may be on sys.path through an editable install's .pth in the shared
    # site-packages; it must not win: every module of ours is the installed copy.
    assert "PYTHONPATH" not in ran["env"]
    assert Path(ran["resources"]).resolve().is_relative_to(site), ran["resources"]
    strays = {n: f for n, f in ran["modules"].items()
              if f is None or not Path(f).resolve().is_relative_to(site)}
    assert not strays, f"modules not from the installed copy: {strays}"
    assert {"engine.personalize", "engine.models.tiny", "desktop_app.main_window"} \
        <= set(ran["modules"])

    report = _run(installed, "mycanvas", "report", str(project))
    page = Path(report.stdout.strip().splitlines()[-1])
    assert "<html" in page.read_text(encoding="utf-8")  # the template, from the wheel

    shown = _run(installed, str(installed["bin"] / "mycanvas-studio"), str(project),
                 extra_env={"MYCANVAS_STARTUP_PROBE": "exit"}, timeout=120)
    assert "window-shown" in shown.stdout, shown.stdout + shown.stderr


def test_resources_are_the_ones_beside_the_running_code(tmp_path, monkeypatch):
    from engine.paths import RESOURCES, find_resources

    assert RESOURCES == REPO / "resources"  # this checkout's own, not an installed copy
    installed = tmp_path / "site-packages"
    (installed / RESOURCES_PACKAGE).mkdir(parents=True)
    (installed / RESOURCES_PACKAGE / "profiles.json").write_text("{}")
    assert find_resources(installed) == installed / RESOURCES_PACKAGE
    checkout = tmp_path / "checkout"
    (checkout / "resources").mkdir(parents=True)
    (checkout / "resources" / "profiles.json").write_text("{}")
    # an editable install may make the real package importable: look for one that is not
    monkeypatch.setattr("engine.paths.RESOURCES_PACKAGE", "mycanvas_resources_nowhere")
    with pytest.raises(RuntimeError, match="installed without its resources"):
        find_resources(checkout)  # no pyproject.toml: not a source tree
    (checkout / "pyproject.toml").write_text("")
    assert find_resources(checkout) == checkout / "resources"
