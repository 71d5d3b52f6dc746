"""What a job costs: the price table, an estimate before it runs, its bill after.

Prices are on-demand USD per instance-hour for SageMaker training, from the table
shipped in `ssmake/prices.json` (its source and date are in the file) under the
project's own (`[project] prices = "file.json"`). A SageMaker job is billed for
BillableTimeInSeconds on each of its instances: for a spot job that time is
already what spot saved, so the bill is billable hours x instances x price.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmake.errors import ConfigError
from ssmake.project.model import Project, Task

if TYPE_CHECKING:
    from ssmake.plan.planner import Planner, TaskPlan

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Prices:
    """Hourly prices by region and instance type; `everywhere` applies to any region."""

    regions: dict[str, dict[str, float]] = field(default_factory=dict)
    everywhere: dict[str, float] = field(default_factory=dict)
    source: str = ""
    date: str = ""

    def hourly(self, instance_type: str, region: str) -> float | None:
        return self.everywhere.get(instance_type, self.regions.get(region, {}).get(instance_type))


def load_prices(override: Path | None = None) -> Prices:
    """The shipped table, with the project's file (if any) on top of it."""
    # Beside the package's modules in every install (package data); read as a file,
    # since importlib.resources costs every build ~4 ms of imports.
    shipped = json.loads((Path(__file__).parent.parent / "prices.json").read_text())
    prices = _parse(shipped, "ssmake/prices.json")
    if override is None:
        return prices
    try:
        doc = json.loads(override.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{override}: cannot read the prices: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"{override}: not JSON ({error}); fix the prices file") from None
    own = _parse(doc, str(override))
    regions = {r: dict(table) for r, table in prices.regions.items()}
    for region, table in own.regions.items():
        regions.setdefault(region, {}).update(table)
    return Prices(regions, own.everywhere, own.source or prices.source, own.date or prices.date)


def _parse(doc: Any, source: str) -> Prices:
    """`{"regions": {REGION: {TYPE: USD}}}`, or a flat `{TYPE: USD}` for every region."""
    hint = 'write {"regions": {"us-east-1": {"ml.m5.large": 0.115}}} or {"ml.m5.large": 0.115}'
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a JSON object of prices; {hint}")
    if "regions" not in doc:
        return Prices(everywhere=_table(doc, source, hint))
    regions = doc["regions"]
    if not isinstance(regions, Mapping):
        raise ConfigError(f"{source}: regions: expected an object by region; {hint}")
    return Prices(
        {
            str(region): _table(table, f"{source}: regions.{region}", hint)
            for region, table in regions.items()
        },
        source=str(doc.get("source", "")),
        date=str(doc.get("date", "")),
    )


def _table(table: Any, where: str, hint: str) -> dict[str, float]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected an object of instance type to USD per hour; {hint}")
    out: dict[str, float] = {}
    for name, price in table.items():
        if not name.startswith("ml."):
            continue
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise ConfigError(f"{where}: {name}: expected USD per hour as a number, got {price!r}")
        out[str(name)] = float(price)
    return out


@dataclass(frozen=True)
class Estimate:
    """What one run of a task would cost; `usd` is None when its price is unknown."""

    task: str
    usd: float | None
    hours: float
    upper_bound: bool
    instance_type: str
    instance_count: int
    spot: bool
    backend: str

    def describe(self, region: str) -> str:
        if self.backend != "sagemaker":
            return f"$0 on {self.backend}"
        shape = f"{self.instance_count} x {self.instance_type}"
        if self.usd is None:
            return f"price unknown for {shape} in {region}: add it to [project] prices"
        basis = "max_run_mins" if self.upper_bound else "last run"
        text = f"{'up to ' if self.upper_bound else ''}{usd(self.usd)}"
        text += f" ({shape}, {duration(self.hours * 3600)} from {basis})"
        if self.spot:
            text += ", on-demand price: spot is usually cheaper"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "usd": None if self.usd is None else round(self.usd, 4),
            "hours": round(self.hours, 4),
            "upper_bound": self.upper_bound,
            "instance_type": self.instance_type,
            "instance_count": self.instance_count,
            "spot": self.spot,
        }


@dataclass(frozen=True)
class Costing:
    """Prices in one region, for jobs on one backend (the local one costs nothing)."""

    prices: Prices
    region: str
    backend: str

    def estimate(self, task: Task, last: Mapping[str, Any] | None) -> Estimate:
        """The cost of running `task` once: the billable time of its last bill (in
        `last`, the task's marker) when known, else `max_run_mins`, an upper bound."""
        billed = (last or {}).get("billing") or {}
        seconds: object = billed.get("billable_seconds")
        upper = True
        hours = task.max_run_mins / 60
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            upper, hours = False, seconds / 3600
        price = self.hourly(task)
        total = None if price is None else price * task.instance_count * hours
        return Estimate(
            task.name,
            total,
            hours,
            upper,
            task.instance_type,
            task.instance_count,
            task.spot,
            self.backend,
        )

    def bill(
        self,
        task: Task,
        *,
        wall_seconds: float,
        training_seconds: int | None = None,
        billable_seconds: int | None = None,
    ) -> dict[str, Any]:
        """What a finished job cost, as the marker and run record keep it."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "wall_seconds": round(wall_seconds, 3),
            "instance_type": task.instance_type,
            "instance_count": task.instance_count,
            "spot": task.spot,
        }
        if self.backend != "sagemaker":
            out["usd"] = 0.0
            return out
        out["training_seconds"] = training_seconds
        out["billable_seconds"] = billable_seconds
        price = self.hourly(task)
        out["usd"] = (
            None
            if price is None or billable_seconds is None
            else round(price * task.instance_count * billable_seconds / 3600, 4)
        )
        if (
            training_seconds
            and billable_seconds is not None
            and training_seconds > billable_seconds
        ):
            out["saved_percent"] = round(100 * (1 - billable_seconds / training_seconds))
        return out

    def hourly(self, task: Task) -> float | None:
        if self.backend != "sagemaker":
            return 0.0
        return self.prices.hourly(task.instance_type, self.region)


def costing_for(project: Project, environ: Mapping[str, str]) -> Costing:
    """The project's costing: its region (else AWS_REGION, AWS_DEFAULT_REGION,
    us-east-1), the shipped prices under its own file."""
    region = (
        project.region
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )
    override = project.root / project.prices if project.prices else None
    return Costing(load_prices(override), region, project.backend)


def describe_bill(billing: Mapping[str, Any]) -> str:
    """`billed 4m 3s spot x 2 instances, $0.05 (saved 67%)`, or `$0 on local`."""
    if billing.get("backend") != "sagemaker":
        return f"$0 on {billing.get('backend')}"
    seconds = billing.get("billable_seconds")
    if seconds is None:
        return "billed time unknown"
    count = int(billing.get("instance_count", 1))
    text = f"billed {duration(seconds)}{' spot' if billing.get('spot') else ''}"
    if count > 1:
        text += f" x {count} instances"
    cost = billing.get("usd")
    text += ", price unknown" if cost is None else f", {usd(cost)}"
    if billing.get("saved_percent"):
        text += f" (saved {billing['saved_percent']}%)"
    return text


def usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"


def duration(seconds: float) -> str:
    """`12m 10s`, `2h 5m`, `40s`."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def plan_estimates(
    plans: Iterable[TaskPlan], planner: Planner, costing: Costing
) -> dict[str, Estimate]:
    """An estimate for each planned task that would run (stale, not restorable),
    from the billable time its marker recorded, if any."""
    out: dict[str, Estimate] = {}
    for plan in plans:
        if plan.state == "stale" and not plan.restorable:
            task = planner.project.tasks[plan.name]
            out[plan.name] = costing.estimate(task, planner.read_marker(plan.name))
    return out


def total(estimates: Iterable[Estimate]) -> tuple[float, bool, list[str]]:
    """The sum of the known estimates, whether any is an upper bound, and the tasks
    whose price is unknown."""
    known = [e for e in estimates if e.usd is not None]
    unknown = [e.task for e in estimates if e.usd is None]
    return sum(e.usd or 0.0 for e in known), any(e.upper_bound for e in known), unknown
