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


CALIBRATION_TOKENS = 64


@dataclass
class Speed:
    """Seconds per token position (inference forward; forward + backward with gradients; timed by
    exformer.core.cost.calibrated), and how the requests run since compared with what those
    figures predicted."""

    forward: float | None = None
    gradient: float | None = None
    ratios: dict = field(default_factory=lambda: {"integrated_gradients": [], "forward_only": []})

    def learn(self, kind: str, predicted: float, seconds: float) -> None:
        """A request of `kind` predicted (uncorrected) at `predicted` s took `seconds`."""
        if predicted > 0:
            self.ratios[kind] = (self.ratios[kind] + [seconds / predicted])[-5:]

    def correction(self, kind: str, optimistic: bool = False) -> float:
        """The factor on the calibrated figure: the median of the last 5 requests' ratios (within
        ¼–4×); `optimistic`: the fastest they have shown, at most 1 — what a refusal uses, so a
        worker slowed by a busy machine or a cold start does not refuse what it can run."""
        ratios = self.ratios[kind]
        if not ratios:
            return 1.0
        if optimistic:
            return min(1.0, min(ratios))
        return min(4.0, max(0.25, sorted(ratios)[len(ratios) // 2]))

    def source(self, kind: str) -> str:
        n = len(self.ratios[kind])
        return (
            f"a {CALIBRATION_TOKENS}-token calibration pass on this worker"
            if not n
            else f"a {CALIBRATION_TOKENS}-token calibration pass, corrected by this worker's last {n} request(s) "
            "of this kind"
        )
