"""Cost figures as a person reads them: per-task estimates, totals, the table
--max-cost refuses a build with."""

from __future__ import annotations

from collections.abc import Mapping

from ssmake.plan.cost import Costing, Estimate, total, usd


def total_line(estimates: Mapping[str, Estimate], costing: Costing) -> str:
    """`estimated cost: up to $11.04 for 4 jobs on sagemaker (us-east-1, prices of 2024-06)`."""
    amount, upper, unknown = total(estimates.values())
    jobs = f"{len(estimates)} job{'' if len(estimates) == 1 else 's'}"
    if costing.backend != "sagemaker":
        return f"estimated cost: $0 for {jobs} on {costing.backend}"
    dated = f", prices of {costing.prices.date}" if costing.prices.date else ""
    line = f"estimated cost: {'up to ' if upper else ''}{usd(amount)} for {jobs} on sagemaker"
    line += f" ({costing.region}{dated})"
    if unknown:
        line += f"; price unknown for {', '.join(unknown)}: add them to [project] prices"
    return line


def table(estimates: Mapping[str, Estimate], costing: Costing) -> list[str]:
    """One line per task and its estimate, then the total."""
    if not estimates:
        return ["  (nothing would run)"]
    width = max(len(name) for name in estimates)
    lines = [f"  {name:<{width}}  {e.describe(costing.region)}" for name, e in estimates.items()]
    amount, upper, _ = total(estimates.values())
    lines.append(f"  {'total':<{width}}  {'up to ' if upper else ''}{usd(amount)}")
    return lines


def estimates_json(estimates: Mapping[str, Estimate], costing: Costing) -> dict[str, object]:
    amount, upper, unknown = total(estimates.values())
    return {
        "usd": round(amount, 4),
        "upper_bound": upper,
        "unknown": unknown,
        "backend": costing.backend,
        "region": costing.region,
        "prices": {"source": costing.prices.source, "date": costing.prices.date},
    }
