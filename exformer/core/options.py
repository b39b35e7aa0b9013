"""What a loaded model's passes may do and what they saw: named options instead of module
globals, so a benchmark or a test switches one speed-up off for one model, not for the process.

>>> PassOptions().prefix_backward, PassOptions(head_position_only=False).head_position_only
(True, False)
"""

from dataclasses import dataclass, field


def _attention_kernels() -> dict[str, str]:
    # CPU: the model's own (eager) attention, the math captum runs, so integrated gradients equal
    # captum's to the last bit (SDPA differed by up to 2e-6 of max |IG| on the sentiment model).
    # GPUs: SDPA, which keeps no [T, T] maps for the backward.
    return {"cpu": "eager", "cuda": "sdpa"}


@dataclass(frozen=True)
class PassOptions:
    """The speed-ups of the gradients passes; each gives the same numbers as without it."""

    head_position_only: bool = True  # a [CLS]-reading classifier's last layer at position 0 only
    prefix_backward: bool = True  # a continuation target's backward over its own prefix only
    gradient_attention: dict[str, str] = field(default_factory=_attention_kernels)  # device type → kernel


@dataclass
class PassCounters:
    """What the passes of one loaded model did that a metric reports (exformer.serving.metrics)."""

    oom_halvings: int = 0  # chunks of path points halved out of memory
