"""Exact isx durations, times and pixel sizes (rational numbers, never truncated to ms).

`isx.Duration.from_msecs` truncates to whole milliseconds (30 fps becomes 33 ms). isx stores
every duration as a ratio of two int64 (`isx._internal.IsxRatio`); these helpers build those
ratios from Python `Fraction`s so 1/30 s is stored as exactly 1/30 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction

from cnmflow.isx_package import isx_package

#: Largest denominator used when a float is turned into an exact fraction.
MAX_DENOMINATOR = 1_000_000

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def exact_fraction(value: float, *, max_denominator: int = MAX_DENOMINATOR) -> Fraction:
    """The simplest fraction within float precision of `value` (30.0 → 30, 29.97 → 2997/100)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot make an exact fraction of {value!r}; give a finite number")
    return Fraction(value).limit_denominator(max_denominator)


def ratio(value: Fraction):
    """An `isx._internal.IsxRatio` holding `value` exactly."""
    value = Fraction(value)
    return isx_package()._internal.IsxRatio(value.numerator, value.denominator)


def as_fraction(duration) -> Fraction:
    """The exact value of an `isx.Duration` (or an `IsxRatio`) as a Fraction of seconds."""
    impl = getattr(duration, "_impl", duration)
    return Fraction(int(impl.num), int(impl.den))


def duration(seconds: Fraction):
    """An `isx.Duration` of exactly `seconds`."""
    return isx_package().Duration._from_impl(ratio(seconds))


def period_from_rate(fr: float):
    """The `isx.Duration` of one frame at `fr` frames per second, exactly 1/fr (1/30 s at 30 fps)."""
    rate = exact_fraction(fr)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fr!r}")
    return duration(1 / rate)


def time_from_seconds(secs_since_epoch: Fraction, utc_offset: int = 0):
    """An `isx.Time` at `secs_since_epoch` (UTC), with a local UTC offset in seconds."""
    return isx_package().Time._from_secs_since_epoch(duration(Fraction(secs_since_epoch)), int(utc_offset))


def time_from_datetime(when: datetime | None):
    """An `isx.Time` for a datetime (naive means UTC), to the microsecond; None → the epoch."""
    if when is None:
        return time_from_seconds(Fraction(0))
    aware = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    delta = aware - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    offset = aware.utcoffset() or timedelta(0)
    return time_from_seconds(Fraction(micros, 1_000_000), int(offset.total_seconds()))


def time_to_datetime(time) -> datetime:
    """The (timezone-aware) datetime of an `isx.Time`, rounded to the microsecond."""
    impl = time._impl
    secs = Fraction(int(impl.secs_since_epoch.num), int(impl.secs_since_epoch.den))
    offset = int(impl.utc_offset)
    tz = timezone(timedelta(seconds=offset)) if abs(offset) < 86_400 else timezone.utc
    return (_EPOCH + timedelta(microseconds=round(secs * 1_000_000))).astimezone(tz)


def set_pixel_size(spacing, *, height_um: Fraction, width_um: Fraction) -> None:
    """Set the pixel size of an `isx.Spacing` (µm per pixel); isx's own default is 3 µm."""
    spacing._impl.pixel_width = ratio(Fraction(width_um))
    spacing._impl.pixel_height = ratio(Fraction(height_um))


# ----------------------------------------------------------------------------- plain copies
# `isx.Timing` / `isx.Spacing` wrap ctypes structures: they cannot be pickled, so a MovieInfo
# holding them breaks Prefect's result cache. Movies keep these plain, exact copies instead and
# become isx objects only where isx is called (`to_isx`).
Ratio = tuple[int, int]  # (numerator, denominator) exactly as isx stored it, never normalised


def _ratio_of(impl) -> Ratio:
    return int(impl.num), int(impl.den)


def _isx_ratio(value: Ratio):
    return isx_package()._internal.IsxRatio(int(value[0]), int(value[1]))


@dataclass(frozen=True)
class IsxdTiming:
    """The timing of an isxd movie as plain, picklable data (an `isx.Timing` without ctypes).

    ``period`` and ``start`` are exact (numerator, denominator) seconds; ``start`` counts from
    the Unix epoch (UTC), ``utc_offset`` is the local offset in seconds. Sample indices of
    dropped, cropped (inclusive first-last pairs) and blank frames as isx lists them.
    """

    num_samples: int
    period: Ratio
    start: Ratio = (0, 1)
    utc_offset: int = 0
    dropped: tuple[int, ...] = ()
    cropped: tuple[tuple[int, int], ...] = ()
    blank: tuple[int, ...] = ()

    @property
    def period_s(self) -> Fraction:
        """Seconds per frame, exact."""
        return Fraction(*self.period)

    @classmethod
    def from_isx(cls, timing) -> "IsxdTiming":
        """Copy an `isx.Timing` (also one that is only a view into a live isx.Movie)."""
        impl = timing._impl
        return cls(num_samples=int(timing.num_samples), period=_ratio_of(impl.step),
                   start=_ratio_of(impl.start.secs_since_epoch), utc_offset=int(impl.start.utc_offset),
                   dropped=tuple(int(i) for i in timing.dropped),
                   cropped=tuple((int(a), int(b)) for a, b in timing.cropped),
                   blank=tuple(int(i) for i in timing.blank))

    def to_isx(self):
        """A new `isx.Timing` holding exactly these values (call only where isx needs one)."""
        isx = isx_package()
        period = isx.Duration._from_impl(_isx_ratio(self.period))
        start = isx.Time._from_secs_since_epoch(isx.Duration._from_impl(_isx_ratio(self.start)), self.utc_offset)
        return isx.Timing(num_samples=self.num_samples, period=period, start=start, dropped=list(self.dropped),
                          cropped=[list(pair) for pair in self.cropped], blank=list(self.blank))


@dataclass(frozen=True)
class IsxdSpacing:
    """The spacing of an isxd movie as plain, picklable data (an `isx.Spacing` without ctypes).

    ``num_pixels`` is (rows, cols); pixel sizes and the top-left corner are exact
    (numerator, denominator) µm.
    """

    num_pixels: tuple[int, int]
    pixel_height: Ratio = (3, 1)  # isx's default pixel size
    pixel_width: Ratio = (3, 1)
    top: Ratio = (0, 1)
    left: Ratio = (0, 1)

    @classmethod
    def from_isx(cls, spacing) -> "IsxdSpacing":
        """Copy an `isx.Spacing`."""
        impl = spacing._impl
        return cls(num_pixels=(int(impl.num_rows), int(impl.num_cols)),
                   pixel_height=_ratio_of(impl.pixel_height), pixel_width=_ratio_of(impl.pixel_width),
                   top=_ratio_of(impl.top), left=_ratio_of(impl.left))

    def to_isx(self):
        """A new `isx.Spacing` holding exactly these values (call only where isx needs one)."""
        spacing = isx_package().Spacing(num_pixels=tuple(self.num_pixels))
        impl = spacing._impl
        impl.pixel_height, impl.pixel_width = _isx_ratio(self.pixel_height), _isx_ratio(self.pixel_width)
        impl.top, impl.left = _isx_ratio(self.top), _isx_ratio(self.left)
        return spacing
