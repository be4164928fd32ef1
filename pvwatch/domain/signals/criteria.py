"""When a disproportionality statistic is a signal, and when a known signal has strengthened.

Thresholds (all configurable, defaults from the literature):
- PRR >= 2 with chi-square >= 4 and a >= 3 (Evans, Waller & Davis 2001, Pharmacoepidemiol Drug Saf 10:483);
  the chi-square is the Yates-corrected one, as in Evans 2001.
- EB05 >= 2 (Szarfman, Machado & O'Neill 2002, Drug Saf 25:381; FDA's screening threshold for MGPS).
- IC025 > 0 (Norén et al. 2013, Stat Methods Med Res 22:57; the WHO-UMC screening threshold).
A published signal is republished as strengthened when its strength measure (PRR, EB05, 2^IC025) has grown by
at least `strengthen_ratio` since it was last published.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from pvwatch.domain.signals.disproportionality import CountArray, FloatArray


class SignalMethod(StrEnum):
    PRR = "prr"
    EBGM = "ebgm"
    IC = "ic"


@dataclass(frozen=True)
class SignalThresholds:
    prr_min: float = 2.0
    chi2_min: float = 4.0
    a_min: int = 3
    eb05_min: float = 2.0
    ic025_min: float = 0.0
    strengthen_ratio: float = 1.5

    def criterion(self, method: SignalMethod) -> str:
        """The threshold a method's signals meet, as it is labelled in metrics: 'prr>=2,chi2_yates>=4,a>=3'."""
        if method is SignalMethod.PRR:
            return f"prr>={self.prr_min:g},chi2_yates>={self.chi2_min:g},a>={self.a_min}"
        if method is SignalMethod.EBGM:
            return f"eb05>={self.eb05_min:g}"
        return f"ic025>{self.ic025_min:g}"


def signal_flags(thresholds: SignalThresholds, a: CountArray, prr: FloatArray, chi2_yates: FloatArray,
                 eb05: FloatArray, ic025: FloatArray) -> dict[SignalMethod, NDArray[np.bool_]]:
    """Which pairs meet each method's threshold (a missing statistic never meets one)."""
    with np.errstate(invalid="ignore"):
        return {
            SignalMethod.PRR: (prr >= thresholds.prr_min) & (chi2_yates >= thresholds.chi2_min)
            & (a >= thresholds.a_min),
            SignalMethod.EBGM: eb05 >= thresholds.eb05_min,
            SignalMethod.IC: ic025 > thresholds.ic025_min,
        }


def strength(method: SignalMethod, prr: float, eb05: float, ic025: float) -> float:
    """The ratio-scale measure whose growth makes a signal 'strengthened'."""
    if method is SignalMethod.PRR:
        return prr
    if method is SignalMethod.EBGM:
        return eb05
    return math.pow(2.0, ic025)


def is_news(thresholds: SignalThresholds, current: float,
            last_published: float | None) -> Literal["new", "strengthened"] | None:
    """'new' for a signal never published, 'strengthened' if it grew enough since last published, else None."""
    if last_published is None:
        return "new"
    if last_published > 0 and current >= thresholds.strengthen_ratio * last_published:
        return "strengthened"
    return None
