"""The ``tta4sr`` method's parameters, checked at ``bench validate`` time.

One method wraps any zoo backbone so a suite reads as {backbone} × {operator}: the backbone
is trained (or loaded from the cache) exactly as the zoo method of the same name, then
frozen; only the operator and its knobs differ between cells.
"""
from __future__ import annotations

import itertools
from typing import Any, Literal, Optional

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from harness.api import Params, Seed
from harness.blocks.sequence import GRU4Rec, GRU4RecParams, SASRec, SASRecParams

#: backbone method name -> (its zoo params model, its encoder class)
BACKBONES: dict[str, tuple[type[Params], type]] = {
    "sasrec": (SASRecParams, SASRec),
    "gru4rec": (GRU4RecParams, GRU4Rec),
}

OPERATORS = ("none", "tnoise", "tmask_r", "tmask_b", "mask", "substitute", "crop",
             "reorder", "insert")

#: operators that rely on the encoder blocking padded keys in attention
NEEDS_ATTENTION = ("tmask_b",)

#: operator knobs a ``grid`` may search on validation (numbers or [low, high] ranges, so
#: each choice is logged as a metric: ``selected_<knob>``, ``selected_<knob>_lo``/``_hi``)
GRID_KNOBS = ("ratio", "m", "noise", "output_noise", "n_in", "n_out")

#: most combinations one grid may hold (each is one TTA pass over the validation users)
MAX_GRID = 64


def has_attention(encoder_cls: type) -> bool:
    """An encoder blocks padded keys iff it builds an attention mask (SASRec does; a GRU
    would run the blocked step through the zero pad embedding instead)."""
    return callable(getattr(encoder_cls, "attention_mask", None))


class TTAParams(Params):
    backbone: Literal["sasrec", "gru4rec"] = "sasrec"
    backbone_params: dict[str, Any] = Field(default_factory=dict,
                                            description="the zoo method's params (validated by it)")
    operator: str = Field("none", description="an augmentation operator (`bench ls "
                          "augmenters`; TTA4SR's: " + ", ".join(OPERATORS[1:]) + ") or none")
    m: int = Field(10, ge=1, description="augmented copies per user (sequence operators)")
    ratio: float = Field(0.5, ge=0.0, le=1.0,
                         description="σ (tmask), γ (mask), η (crop), β (reorder), α (substitute/insert)")
    noise: tuple[float, float] = Field((0.5, 1.0), description="TNoise input range [b, a]: U(b, a)")
    output_noise: Optional[tuple[float, float]] = Field(
        None, description="TNoise output range [b1, a1]; default: same as noise")
    n_in: int = Field(7, ge=0, description="TNoise input-level noisy passes")
    n_out: int = Field(5, ge=0, description="TNoise output-level noisy copies")
    read_at: Literal["last", "last_unmasked"] = Field(
        "last_unmasked", description="tmask_b: read at the last position (code-faithful) or "
                                     "at the last unblocked one (drop trailing blocked items)")
    similarity: Literal["embedding", "cooccurrence"] = "embedding"
    include_original: bool = Field(False, description="add the un-augmented scores to the mean")
    timing_repeats: int = Field(1, ge=1, description="time the plain and TTA passes this many "
                                "times and keep the fastest (scores are identical each time)")
    backbone_seed: Optional[Seed] = Field(
        None, description="train the backbone with this seed instead of the cell's (the cell "
                          "seed then only varies the augmentation: TTA seeds on one backbone)")
    tta_seed: Optional[Seed] = Field(None, description="augmentation seed (default: the cell's seed)")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="operator settings chosen on validation: each knob (" + ", ".join(GRID_KNOBS)
                    + ") lists candidates; every combination is scored on the validation split "
                    "with the cell's own frozen backbone and TTA seed, and the best by the "
                    "suite's valid_metric (the first on ties) is the one tested")

    @field_validator("operator")
    @classmethod
    def _registered(cls, v: str, info: ValidationInfo) -> str:
        """At ``bench validate`` time the catalogue is at hand: the operator must be one
        some installed plugin registers (``bench_register_augmenters``)."""
        catalogue = (info.context or {}).get("catalogue")
        if catalogue is not None and v != "none" and v not in catalogue.augmenters:
            known = ", ".join(["none", *sorted(catalogue.augmenters)])
            raise ValueError(f"unknown operator '{v}'. Known: {known}")
        return v

    @field_validator("noise", "output_noise")
    @classmethod
    def _range(cls, v):
        if v is not None and v[0] > v[1]:
            raise ValueError(f"noise range [b, a] needs b <= a, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "TTAParams":
        params_cls, encoder_cls = BACKBONES[self.backbone]
        try:
            self.backbone_params = params_cls.model_validate(self.backbone_params).model_dump()
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(map(str, err["loc"]))
            raise ValueError(f"backbone_params.{where}: {err['msg']} (backbone '{self.backbone}' "
                             f"accepts: {', '.join(params_cls.model_fields)})") from None
        if self.operator in NEEDS_ATTENTION and not has_attention(encoder_cls):
            raise ValueError(f"operator '{self.operator}' blocks the masked positions through "
                             f"the attention key-padding mask, and backbone '{self.backbone}' has "
                             "no attention; use tmask_r (skipping steps in a recurrent model is "
                             "removing them)")
        if self.operator == "tnoise" and self.n_in + self.n_out == 0:
            raise ValueError("operator 'tnoise' needs n_in + n_out >= 1 noisy copies")
        if self.grid:
            self._check_grid()
        return self

    def _check_grid(self) -> None:
        """Every knob is searchable, every list non-empty, the grid small, and every
        combination a valid setting (so a bad candidate fails at ``bench validate``)."""
        if self.operator == "none":
            raise ValueError("grid: operator 'none' has no settings to choose")
        for knob, values in self.grid.items():
            if knob not in GRID_KNOBS:
                raise ValueError(f"grid.{knob}: not a searchable knob (searchable: "
                                 f"{', '.join(GRID_KNOBS)})")
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{knob}: needs a non-empty list of candidates")
        size = 1
        for values in self.grid.values():
            size *= len(values)
        if size > MAX_GRID:
            raise ValueError(f"grid: {size} combinations, at most {MAX_GRID} (each is a TTA "
                             "pass over every validation user)")
        for combo in self._combinations():
            try:
                TTAParams.model_validate({**self.model_dump(exclude={"grid"}), **combo})
            except ValidationError as exc:
                err = exc.errors()[0]
                raise ValueError(f"grid candidate {combo}: {err['msg']}") from None

    def _combinations(self) -> list[dict[str, Any]]:
        knobs = list(self.grid)
        return [dict(zip(knobs, values)) for values in itertools.product(*self.grid.values())]

    def candidates(self) -> list["TTAParams"]:
        """One setting per grid combination (grid order: the last knob varies fastest);
        ``[self]`` without a grid."""
        if not self.grid:
            return [self]
        base = self.model_dump(exclude={"grid"})
        return [TTAParams.model_validate({**base, **combo}) for combo in self._combinations()]

    def selected(self, knobs: list[str]) -> dict[str, float]:
        """This setting's values of the grid ``knobs`` as metrics (``selected_ratio``; a
        range as ``selected_noise_lo``/``_hi``), for a board to show what validation chose."""
        out: dict[str, float] = {}
        for knob in knobs:
            value = getattr(self, knob)
            if knob == "output_noise" and value is None:
                value = self.noise
            if isinstance(value, (tuple, list)):
                out[f"selected_{knob}_lo"], out[f"selected_{knob}_hi"] = map(float, value)
            else:
                out[f"selected_{knob}"] = float(value)
        return out

    @property
    def copies(self) -> int:
        """Score vectors averaged per user (the original included if asked)."""
        n = {"none": 0, "tnoise": self.n_in + self.n_out}.get(self.operator, self.m)
        return n + (1 if self.include_original or self.operator == "none" else 0)

    def operator_params(self) -> dict[str, Any]:
        """The ``params`` an operator's ``apply`` receives."""
        return {"m": self.m, "ratio": self.ratio, "noise": tuple(self.noise),
                "output_noise": tuple(self.output_noise or self.noise), "n_in": self.n_in,
                "n_out": self.n_out, "read_at": self.read_at, "similarity": self.similarity}
