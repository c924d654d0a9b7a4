"""SecondStage: a second stage's network with how it re-ranks and what its confidence is, checked when built. A model
file's entry (models/checkpoint.py), the OpenVINO cache, waldo-export, waldo-crossval and training all build one,
so a bad value is refused by the same rules wherever it comes from."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from waldo_pl.errors import UserError

# What a second stage's calibration maps to a confidence: each spot's own score, or its share of the candidates' odds
# (inference/rerank.py).
CONFIDENCES = ("score", "share")
MAX_MARGIN = 1e6
# A calibration that maps a confidence to itself: sigmoid(1 * x + 0). A second stage has it until it is calibrated, and
# again when it is made to answer with the other number (its mapping was fitted on the one it had).
UNCALIBRATED = (1.0, 0.0)


def as_setting(key: str, value) -> str:
    """How a bad value is named: as train.py's setting (second_stage.margin=-1); the command-line tools name their
    flags instead (as_flag)."""
    return f"second_stage.{key}={value}"


def as_flag(key: str, value) -> str:
    return f"--{key} {value}"


def whole_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def is_margin(value) -> bool:
    """A number of log-odds from 0 (the second stage's ranking alone) up to MAX_MARGIN."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < MAX_MARGIN


def check_reranking(
    candidates=None, margin=None, confidence=None, named: Callable[[str, object], str] = as_setting
) -> None:
    """How a second stage re-ranks: `candidates` spots (a whole number, 1 or more), the first stage's best given
    `margin` log-odds (0 or more), the confidence made from `confidence` (CONFIDENCES); None is not given."""
    if candidates is not None and not whole_number(candidates):
        raise UserError(f"{named('candidates', candidates)}: must be a whole number, 1 or more")
    if margin is not None and not is_margin(margin):
        raise UserError(
            f"{named('margin', margin)}: must be a number of log-odds, 0 or more (0: the second stage's ranking alone)"
        )
    if confidence is not None and confidence not in CONFIDENCES:
        raise UserError(
            f"{named('confidence', confidence)}: must be one of {', '.join(CONFIDENCES)} "
            "(share: the answer's share of the candidates' odds)"
        )


@dataclasses.dataclass(frozen=True)
class SecondStage:
    net: object  # a SpotNetwork (inference/networks.py) or a PyTorch classifier
    candidates: int  # how many of the first stage's spots it looks at
    platt: tuple[float, ...] = UNCALIBRATED  # confidence = sigmoid(a * x + b), x the score or the share's log-odds;
    # with a third number c, + c * the first stage's log-odds at the spot
    calibration: str = "none"  # how the confidence was calibrated, said in the JSON
    margin: float = 0.0  # log-odds the first stage's best spot is given before ranking
    confidence: str = "score"  # what the calibration maps (CONFIDENCES)

    def __post_init__(self):
        check_reranking(self.candidates, self.margin, self.confidence)
        platt = tuple(float(v) for v in self.platt)
        if len(platt) not in (2, 3) or not all(map(math.isfinite, platt)):
            raise UserError(f"second stage: platt={list(self.platt)}: must be two or three finite numbers (a, b[, c])")
        object.__setattr__(self, "platt", platt)
        object.__setattr__(self, "margin", float(self.margin))
        object.__setattr__(self, "calibration", str(self.calibration))

    def with_choices(
        self,
        candidates: int | None = None,
        margin: float | None = None,
        confidence: str | None = None,
        named: Callable[[str, object], str] = as_setting,
    ) -> SecondStage:
        """The stage re-ranking `candidates` spots with `margin`, its confidence made from `confidence` (None keeps
        each as it is); made from another number than it was calibrated on, it is uncalibrated."""
        check_reranking(candidates, margin, confidence, named)
        stage = dataclasses.replace(
            self, **{k: v for k, v in (("candidates", candidates), ("margin", margin)) if v is not None}
        )
        if confidence not in (None, self.confidence):
            stage = dataclasses.replace(
                stage, confidence=confidence, platt=UNCALIBRATED, calibration=f"none: the {confidence} as it comes"
            )
        return stage

    def settings(self) -> dict:
        """Everything but the network, as plain data: what a model file and the OpenVINO cache store beside it."""
        return {
            "candidates": self.candidates,
            "platt": list(self.platt),
            "calibration": self.calibration,
            "margin": self.margin,
            "confidence": self.confidence,
        }

    @classmethod
    def from_settings(cls, net, settings: dict, where: str) -> SecondStage:
        """A stage from `settings()` as a file stored them; files from before the margin re-rank with none, from
        before the confidence calibrate the score. Anything else is a UserError naming `where`."""
        try:
            if not isinstance(settings["candidates"], int) or not isinstance(settings["calibration"], str):
                raise TypeError
            return cls(
                net,
                settings["candidates"],
                tuple(settings["platt"]),
                settings["calibration"],
                settings.get("margin", 0.0),
                settings.get("confidence", "score"),
            )
        except (KeyError, TypeError, ValueError, UserError):
            raise UserError(
                f"{where}: its second_stage entry is not one this project writes; export the model again"
            ) from None
