"""EM concept extraction: several concepts, their tokens and their masks learned together,
from one photo (arXiv 2402.11487, with Break-A-Scene's training loop; run kind "em-extract").

    config.py        ExtractConfig: every setting declared (help, bounds), validated; where
                     each default comes from
    attention.py     capture the cross-attention maps of chosen layers, with gradients
    losses.py        subset sampling, union masks, masked diffusion loss, attention loss
    prompts.py       prompts tokenised piece by piece: where each concept's token sits
    mask_ops.py      the photo's square frame, exclusive labels, cleaning, previews
    crf.py           dense CRF refinement on the photo's colours (pydensecrf2)
    estep.py         the E-step: masks from attention maps (our design, documented there)
    model.py         the fine-tuning core (engine.train) with the two phases' optimisers,
                     the M-step, the E-step's maps
    initial.py       iteration 0's masks: boxes (segmentation stage), project masks, words
    iterations.py    each iteration's masks and figures in the run's folder; read back
    runner.py        one run: the trainer engine.train's loop drives, the E-steps, the end
    outputs.py       the export (the fine-tuning stage's format) and the project's masks
    snapshot.py      the inputs checked, the concepts recorded, the run's snapshot
    extract_job.py   the `extract` job
    jobs.py          the `extract` job, declared once

Public API: `EXTRACT`, `ExtractParams`, `ExtractedConcepts`, and for the Extract page
`read_iterations`, `IterationRecord`, `latest_resumable_extraction`, `parse_concepts`,
`COLOURS` (each concept's colour in the previews, in concept order). Importing this package
is cheap (torch and numpy are imported when a run starts).
"""

from typing import TYPE_CHECKING, Any

from engine.extract.extract_job import RUN_KIND, latest_resumable_extraction
from engine.extract.iterations import IterationRecord, read_iterations
from engine.extract.jobs import EXTRACT, ExtractedConcepts, ExtractParams
from engine.extract.snapshot import parse_concepts


def __getattr__(name: str) -> Any:
    if name == "COLOURS":  # in mask_ops, which imports numpy
        from engine.extract.mask_ops import COLOURS

        return COLOURS
    raise AttributeError(f"module 'engine.extract' has no attribute {name!r}")


if TYPE_CHECKING:
    from engine.extract.mask_ops import COLOURS

__all__ = ["COLOURS", "EXTRACT", "RUN_KIND", "ExtractParams", "ExtractedConcepts",
           "IterationRecord", "latest_resumable_extraction", "parse_concepts",
           "read_iterations"]
