"""engine/README.md's "Adding a stage" lists every place a stage inside the personalize chain
touches: each named file and symbol must exist, the count it states must be the list's, and
the chain's stage list must be declared once (no second list of stage names to keep in step).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "engine" / "README.md"
_PLACE = re.compile(r"^- `([^`]+)` `([^`]+)`:", re.MULTILINE)


def _places() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- chain-stage-places -->", 1)[1].split(
        "<!-- /chain-stage-places -->", 1)[0]
    return _PLACE.findall(block)


def _sources() -> list[Path]:
    return sorted(p for top in ("engine", "desktop_app") for p in (REPO / top).rglob("*.py"))


def test_every_place_the_document_names_exists():
    places = _places()
    assert len(places) >= 10
    for rel, symbol in places:
        path = REPO / rel
        assert path.is_file(), f"engine/README.md names {rel}, which does not exist"
        assert re.search(rf"\b{re.escape(symbol)}\b", path.read_text(encoding="utf-8")), (
            f"engine/README.md says {rel} holds {symbol}; it does not")


def test_the_stated_number_of_files_is_the_list_s():
    text = README.read_text(encoding="utf-8")
    stated = re.search(r"touches (\d+) more files", text)
    assert stated, "the 'Adding a stage' section no longer says how many files"
    assert int(stated.group(1)) == len({rel for rel, _ in _places()})


def test_the_chain_s_stages_are_declared_once():
    from engine.personalize.jobs import CHAIN, STAGES

    assert tuple(stage.name for stage in CHAIN) == STAGES
    declared = [p for p in _sources()
                if re.search(r"^CHAIN\s*[:=]", p.read_text(encoding="utf-8"), re.MULTILINE)]
    assert [p.relative_to(REPO).as_posix() for p in declared] == ["engine/personalize/jobs.py"]
    # A second list or table keyed by the stages (three or more of their names on one line,
    # as a tuple or a dict's keys) is a copy that has to be kept in step by hand.
    quoted = [re.compile(rf"[\"']{name}[\"']") for name in STAGES]
    copies = []
    for path in _sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if sum(bool(q.search(line)) for q in quoted) >= 3:
                copies.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert copies == [], "the chain's stages are listed again:\n" + "\n".join(copies)
