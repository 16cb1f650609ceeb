"""The retention engine: how long a case's records are kept (DOMAIN.md §5). Pure: no Flask, no
database, no storage.

A **policy** is a list of **regimes**. Each regime has a period per retention class (implantable /
other, or the device's lifetime with a minimum) and a **clock**: the stored case event(s) its
period runs from (``signed``: the latest record of the case was signed or frozen; ``released``;
``delivered``, i.e. placed on the market). When a regime names several clock events, its period
runs from the latest of those that have happened.

**retain_until = the latest deadline of every regime that applies** (a regime applies when the
case's class has a period in it, its device category is listed (when the regime lists any), and
one of its clock events has happened). The engine also says which regime set the deadline.

The default policy (no ``PDM_RETENTION_POLICY``) is IMDRF N58: implantable 15 years, other
5 years, counted from the latest of signing, release and delivery (the summaries do not state a
start; DOMAIN.md §5 takes the later of record creation and delivery). ``docs/retention.md``
describes the YAML format; ``pdm_records/retention_policies/`` holds examples.

Units are ``years``, ``days`` and ``seconds``. **Seconds exist for tests only** (a record kept
for seconds is not a record); a policy with a seconds period is valid but ``pdm doctor`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

IMPLANTABLE_YEARS = 15
OTHER_YEARS = 5
CLOCK_EVENTS = ("signed", "released", "delivered")
UNITS = ("years", "days", "seconds")
CATEGORIES = ("custom_made", "patient_matched", "adaptable")
_PERIOD = re.compile(r"^\s*(\d{1,6})\s*(year|years|day|days|second|seconds)\s*$")


def add_years(moment: datetime, years: int) -> datetime:
    """``moment`` plus whole calendar years. From 29 February into a year without one it is
    1 March: a retention period is a minimum ("at least N years"), so never a day short."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February → 1 March
        return moment.replace(year=moment.year + years, month=3, day=1)


def retention_floor(*, implantable: bool, start: datetime) -> datetime:
    """The IMDRF floor (kept for callers without a case, e.g. envelope versions)."""
    return add_years(start, IMPLANTABLE_YEARS if implantable else OTHER_YEARS)


class PolicyError(ValueError):
    """A retention policy that cannot be used; ``problems`` name the file, regime and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Period:
    amount: int
    unit: str  # years | days | seconds

    def after(self, start: datetime) -> datetime:
        if self.unit == "years":
            return add_years(start, self.amount)
        if self.unit == "days":
            return start + timedelta(days=self.amount)
        return start + timedelta(seconds=self.amount)

    def __str__(self) -> str:
        unit = self.unit if self.amount != 1 else self.unit[:-1]
        return f"{self.amount} {unit}"


@dataclass(frozen=True)
class Regime:
    name: str
    title: str
    source: str
    clock: tuple[str, ...]
    implantable: Period | None = None
    other: Period | None = None
    lifetime: bool = False  # the device's expected lifetime, at least ``minimum``
    minimum: Period | None = None
    categories: tuple[str, ...] = ()  # empty: every category


@dataclass(frozen=True)
class Policy:
    regimes: tuple[Regime, ...]
    origin: str = "built-in"

    @property
    def uses_seconds(self) -> bool:
        return any(p is not None and p.unit == "seconds" for r in self.regimes
                   for p in (r.implantable, r.other, r.minimum))

    def describe(self) -> str:
        return ", ".join(r.title for r in self.regimes) + f" ({self.origin})"


@dataclass(frozen=True)
class CaseFacts:
    """What the engine needs to know about a case: its class and its stored event dates."""

    implantable: bool
    category: str = ""
    lifetime_years: int | None = None
    events: Mapping[str, datetime | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Deadline:
    regime: str
    title: str
    source: str
    clock_event: str
    start: datetime
    period: str
    until: datetime


@dataclass(frozen=True)
class Decision:
    """The result: the latest deadline, the regime that set it, and every regime's deadline."""

    retention_class: str  # implantable | other
    retain_until: datetime | None
    deciding: Deadline | None
    deadlines: tuple[Deadline, ...]
    not_applied: tuple[str, ...]  # "regime: why not" (no clock event yet, other class, ...)

    def explain(self) -> str:
        if self.deciding is None:
            return "no retention deadline yet (nothing signed)"
        d = self.deciding
        return (f"{d.title}: {d.period} after {d.clock_event} "
                f"({d.start.date().isoformat()})")


def compute(policy: Policy, facts: CaseFacts) -> Decision:
    """Apply every regime of ``policy`` to ``facts``; the latest deadline wins (DOMAIN.md §5)."""
    deadlines: list[Deadline] = []
    skipped: list[str] = []
    for regime in policy.regimes:
        if regime.categories and facts.category not in regime.categories:
            skipped.append(f"{regime.name}: not for {facts.category or 'this'} devices")
            continue
        if regime.lifetime:
            if regime.minimum is None:  # the loader requires it; never strip the check (-O)
                raise ValueError(f"regime {regime.name}: a lifetime regime needs a minimum")
            lifetime = Period(facts.lifetime_years, "years") if facts.lifetime_years else None
            period = regime.minimum
            if lifetime is not None:
                # The longer of the two; compared on a fixed start so leap days do not matter.
                probe = datetime(2001, 1, 1, tzinfo=UTC)
                if lifetime.after(probe) > regime.minimum.after(probe):
                    period = lifetime
            label = (f"device lifetime {lifetime} (at least {regime.minimum})" if lifetime
                     else f"at least {regime.minimum} (lifetime unknown)")
        else:
            chosen = regime.implantable if facts.implantable else regime.other
            if chosen is None:
                skipped.append(f"{regime.name}: no period for "
                               f"{'implantable' if facts.implantable else 'other'} devices")
                continue
            period, label = chosen, str(chosen)
        happened = [(facts.events[e], e) for e in regime.clock if facts.events.get(e)]
        if not happened:
            skipped.append(f"{regime.name}: waits for {' / '.join(regime.clock)}")
            continue
        start, event = max(happened, key=lambda pair: pair[0])  # type: ignore[arg-type,return-value]
        if start is None:  # ``happened`` holds dated events only; never strip the check (-O)
            raise ValueError(f"regime {regime.name}: an event without a date")
        deadlines.append(Deadline(regime.name, regime.title, regime.source, event, start, label,
                                  period.after(start)))
    deciding = max(deadlines, key=lambda d: d.until) if deadlines else None
    return Decision("implantable" if facts.implantable else "other",
                    deciding.until if deciding else None, deciding, tuple(deadlines),
                    tuple(skipped))


# -- the policy as configuration -----------------------------------------------------------------
IMDRF = Regime(
    name="imdrf", title="IMDRF N58",
    source="IMDRF N58: at least 15 years for implantable devices, 5 years for others "
           "(DOMAIN.md §5); start taken as the latest of signing, release and delivery",
    clock=("signed", "released", "delivered"),
    implantable=Period(IMPLANTABLE_YEARS, "years"), other=Period(OTHER_YEARS, "years"))
DEFAULT_POLICY = Policy((IMDRF,), "built-in default")

_REGIME_KEYS = {"name", "title", "source", "clock", "periods", "categories"}
_PERIOD_KEYS = {"implantable", "other", "lifetime", "minimum"}


def parse_period(value: Any) -> Period:
    """``"15 years"``, ``"30 days"``, ``"20 seconds"`` or ``{"years": 15}``."""
    if isinstance(value, Mapping) and len(value) == 1:
        ((unit, amount),) = value.items()
        value = f"{amount} {unit}"
    if isinstance(value, str):
        match = _PERIOD.match(value)
        if match:
            amount, unit = int(match.group(1)), match.group(2)
            if amount <= 0:
                raise ValueError("must be a positive number")
            return Period(amount, unit if unit.endswith("s") else unit + "s")
    raise ValueError(f"{value!r} is not a period; write e.g. '15 years', '30 days' or "
                     "'20 seconds' (seconds for tests only)")


def policy_from_data(data: Any, origin: str) -> Policy:
    """Validate a parsed policy document; raise :class:`PolicyError` naming each problem."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise PolicyError([f"{origin}: expected a mapping with a 'regimes' list"])
    unknown = sorted(set(data) - {"version", "regimes"})
    if unknown:
        problems.append(f"{origin}: unknown top-level field(s) {', '.join(unknown)}")
    if data.get("version", 1) != 1:
        problems.append(f"{origin}: field 'version': only version 1 is known")
    raw = data.get("regimes")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        problems.append(f"{origin}: field 'regimes': give a non-empty list of regimes")
        raise PolicyError(problems)
    regimes: list[Regime] = []
    seen: set[str] = set()
    for index, item in enumerate(raw, start=1):
        where = f"{origin}: regime #{index}"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
            problems.append(f"{where}: field 'name': give a short lower-case name "
                            "(letters, digits, - and _)")
        else:
            where = f"{origin}: regime '{name}'"
            if name in seen:
                problems.append(f"{where}: field 'name': used twice")
            seen.add(name)
        for key in sorted(set(item) - _REGIME_KEYS):
            problems.append(f"{where}: unknown field '{key}' (known: "
                            f"{', '.join(sorted(_REGIME_KEYS))})")
        clock_raw = item.get("clock")
        clock = (clock_raw,) if isinstance(clock_raw, str) else tuple(clock_raw or ())
        if not clock or any(e not in CLOCK_EVENTS for e in clock):
            problems.append(f"{where}: field 'clock': {clock_raw!r} is not one or more of "
                            f"{', '.join(CLOCK_EVENTS)}")
        categories_raw = item.get("categories") or ()
        categories = ((categories_raw,) if isinstance(categories_raw, str)
                      else tuple(categories_raw))
        if any(c not in CATEGORIES for c in categories):
            problems.append(f"{where}: field 'categories': {categories_raw!r} is not a list of "
                            f"{', '.join(CATEGORIES)}")
        periods_raw = item.get("periods")
        periods: dict[str, Period] = {}
        lifetime = False
        if not isinstance(periods_raw, Mapping) or not periods_raw:
            problems.append(f"{where}: field 'periods': give 'implantable' and/or 'other', or "
                            "'lifetime: device' with a 'minimum'")
        else:
            for key in sorted(set(periods_raw) - _PERIOD_KEYS):
                problems.append(f"{where}: unknown field 'periods.{key}' (known: "
                                f"{', '.join(sorted(_PERIOD_KEYS))})")
            for key in ("implantable", "other", "minimum"):
                if key in periods_raw:
                    try:
                        periods[key] = parse_period(periods_raw[key])
                    except ValueError as exc:
                        problems.append(f"{where}: field 'periods.{key}': {exc}")
            if "lifetime" in periods_raw:
                if periods_raw["lifetime"] != "device":
                    problems.append(f"{where}: field 'periods.lifetime': the only value is "
                                    "'device' (the device type's expected lifetime)")
                lifetime = True
                if "minimum" not in periods_raw:
                    problems.append(f"{where}: field 'periods.minimum': a lifetime regime "
                                    "needs a minimum, e.g. '2 years'")
                if {"implantable", "other"} & set(periods_raw):
                    problems.append(f"{where}: field 'periods': a lifetime regime has no "
                                    "'implantable'/'other' periods")
            elif "minimum" in periods_raw:
                problems.append(f"{where}: field 'periods.minimum': only with 'lifetime: device'")
            elif not {"implantable", "other"} & set(periods_raw):
                problems.append(f"{where}: field 'periods': give 'implantable' and/or 'other'")
        for text_key in ("title", "source"):
            if text_key in item and not isinstance(item[text_key], str):
                problems.append(f"{where}: field '{text_key}': must be text")
        if isinstance(name, str):
            regimes.append(Regime(
                name=name, title=str(item.get("title") or name),
                source=str(item.get("source") or ""), clock=clock,
                implantable=periods.get("implantable"), other=periods.get("other"),
                lifetime=lifetime, minimum=periods.get("minimum"), categories=categories))
    if problems:
        raise PolicyError(problems)
    return Policy(tuple(regimes), origin)


def load_policy(path: str | Path | None) -> Policy:
    """The policy in the YAML file at ``path``, or the built-in default when ``path`` is empty.

    Raises :class:`PolicyError` with messages that name the file, the regime and the field.
    """
    if not path:
        return DEFAULT_POLICY
    import yaml

    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([f"{origin}: cannot be read ({exc.strerror or exc})"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError([f"{origin}: not valid YAML ({exc})"]) from exc
    return policy_from_data(data, origin)
