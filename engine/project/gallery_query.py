"""Which generated pictures the gallery shows: GalleryQuery, its filters and orders, as SQL
over the generations with their image-level scores (engine/project/gallery.py reads the rows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from engine.errors import InputError
from engine.project.records import check_choice, check_rating

SORTS: tuple[str, ...] = ("newest", "oldest", "cp-clip", "ti-clip", "rating")
TRASH_VIEWS: tuple[str, ...] = ("live", "trash", "all")

# One row per generation with its image-level scores, how it was scored, and whether it
# was guided. A score range filter then reads these columns.
SELECT_PICTURES = """
WITH sc AS (
    SELECT generation_id,
        MAX(CASE WHEN metric = 'cp-clip' AND concept_id IS NULL THEN value END) AS cp_clip,
        MAX(CASE WHEN metric = 'ti-clip' THEN value END) AS ti_clip,
        MAX(CASE WHEN metric = 'cd-text' THEN value END) AS cd_text,
        MAX(CASE WHEN metric = 'cd-image' AND concept_id IS NULL THEN value END) AS cd_image,
        MAX(test_model) AS test_model, MAX(scored_at) AS scored_at, MAX(model) AS model
    FROM scores GROUP BY generation_id
), g AS (
    SELECT generations.*, sc.cp_clip, sc.ti_clip, sc.cd_text, sc.cd_image,
        COALESCE(sc.test_model, 0) AS test_model, sc.scored_at, sc.model,
        CASE WHEN json_valid(settings_json) THEN
            (COALESCE(json_type(settings_json, '$.layout'), 'null') != 'null'
             OR COALESCE(json_type(settings_json, '$.layout_id'), 'null') != 'null')
        ELSE 0 END AS guided
    FROM generations LEFT JOIN sc ON sc.generation_id = generations.id
)
SELECT * FROM g"""

ORDERS = {
    "newest": "created_at DESC, id DESC",
    "oldest": "created_at ASC, id ASC",
    "cp-clip": "cp_clip DESC NULLS LAST, id DESC",
    "ti-clip": "ti_clip DESC NULLS LAST, id DESC",
    "rating": "rating DESC NULLS LAST, favourite DESC, id DESC",
}


def _optional_number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InputError(f"{what} must be a number, got {value!r}")
    return float(value)


def _time_bound(value: str | None, what: str, end: bool) -> tuple[str, str] | None:
    """(SQL operator, ISO text) for a date or timestamp bound; a bare date as `until`
    includes that whole day."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            if end:
                return "<", (day + dt.timedelta(days=1)).isoformat()
            return ">=", day.isoformat()
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{what} must be a date (2024-05-31) or a timestamp, got {value!r}") \
            from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    stamp = moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    return ("<=" if end else ">="), stamp


@dataclass(frozen=True, kw_only=True)
class GalleryQuery:
    """Which pictures the gallery shows, and in which order. Every filter left at its default
    lets everything through; score bounds are inclusive and drop unscored pictures."""

    run_id: int | None = None
    concept_id: int | None = None  # pictures whose prompt names this concept's token
    text: str = ""  # in the prompt, ignoring case
    min_cp: float | None = None
    max_cp: float | None = None
    min_ti: float | None = None
    max_ti: float | None = None
    since: str | None = None  # a date (2024-05-31) or timestamp; made at or after
    until: str | None = None  # a date (that whole day included) or timestamp
    favourites: bool = False
    min_rating: int | None = None
    guided: bool | None = None  # True: layout-guided only; False: unguided only
    scored: bool | None = None  # True: scored only; False: not yet scored only
    # Pictures made with these profiles left out (the caller names the test profiles, so a
    # real profile's gallery keeps noise apart); a picture that names no profile stays.
    exclude_profiles: tuple[str, ...] = ()
    trash: str = "live"  # live, trash or all
    sort: str = "newest"
    limit: int | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        for name in ("run_id", "concept_id", "min_rating", "limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InputError(f"{name} must be a whole number, got {value!r}")
        for name in ("min_cp", "max_cp", "min_ti", "max_ti"):
            object.__setattr__(self, name, _optional_number(getattr(self, name), name))
        if not isinstance(self.text, str):
            raise InputError(f"text must be text, got {self.text!r}")
        if isinstance(self.exclude_profiles, str) or not all(
                isinstance(p, str) for p in self.exclude_profiles):
            raise InputError(f"exclude_profiles must be profile names, got "
                             f"{self.exclude_profiles!r}")
        object.__setattr__(self, "exclude_profiles", tuple(self.exclude_profiles))
        check_rating(self.min_rating)
        check_choice(self.trash, TRASH_VIEWS, "trash")
        check_choice(self.sort, SORTS, "sort")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise InputError(f"offset must be 0 or more, got {self.offset!r}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit must be at least 1, got {self.limit!r}")
        _time_bound(self.since, "since", end=False)
        _time_bound(self.until, "until", end=True)

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.trash == "live":
            clauses.append("deleted_at IS NULL")
        elif self.trash == "trash":
            clauses.append("deleted_at IS NOT NULL")
        if self.run_id is not None:
            clauses.append("run_id = ?")
            params.append(self.run_id)
        if self.concept_id is not None:
            clauses.append("instr(prompt, (SELECT token FROM concepts WHERE id = ?)) > 0")
            params.append(self.concept_id)
        if self.text.strip():
            clauses.append("instr(lower(prompt), lower(?)) > 0")
            params.append(self.text.strip())
        for column, low, high in (("cp_clip", self.min_cp, self.max_cp),
                                  ("ti_clip", self.min_ti, self.max_ti)):
            if low is not None:
                clauses.append(f"{column} >= ?")
                params.append(low)
            if high is not None:
                clauses.append(f"{column} <= ?")
                params.append(high)
        for bound in (_time_bound(self.since, "since", False),
                      _time_bound(self.until, "until", True)):
            if bound is not None:
                clauses.append(f"created_at {bound[0]} ?")
                params.append(bound[1])
        if self.favourites:
            clauses.append("favourite = 1")
        if self.min_rating is not None:
            clauses.append("rating >= ?")
            params.append(self.min_rating)
        if self.guided is not None:
            clauses.append("guided = ?")
            params.append(1 if self.guided else 0)
        if self.scored is not None:
            clauses.append("ti_clip IS NOT NULL" if self.scored else "ti_clip IS NULL")
        if self.exclude_profiles:
            marks = ", ".join("?" * len(self.exclude_profiles))
            clauses.append(f"COALESCE(json_extract(settings_json, '$.profile'), '') "
                           f"NOT IN ({marks})")
            params.extend(self.exclude_profiles)
        return clauses, params

    def sql(self) -> tuple[str, tuple[Any, ...]]:
        """The query's SELECT (filters, order, page) and its parameters."""
        clauses, params = self.where()
        sql = SELECT_PICTURES + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        sql += f" ORDER BY {ORDERS[self.sort]}"
        if self.limit is not None or self.offset:
            sql += " LIMIT ? OFFSET ?"
            params += [self.limit if self.limit is not None else -1, self.offset]
        return sql, tuple(params)

    def count_sql(self) -> tuple[str, tuple[Any, ...]]:
        """How many pictures the filters let through (no order, no page)."""
        clauses, params = self.where()
        sql = SELECT_PICTURES + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        return f"SELECT COUNT(*) FROM ({sql})", tuple(params)
