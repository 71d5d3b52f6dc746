"""--max-cost during a build: launch a task only while what was spent, plus the
estimates of the jobs running, plus its own estimate stays within the limit."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ssmake.plan.cost import Estimate, usd


class Budget:
    """The limit, the estimate of each task that may run, and what was spent."""

    def __init__(self, limit: float, estimates: Mapping[str, Estimate]) -> None:
        self.limit = limit
        self.estimates = dict(estimates)
        self.spent = 0.0
        self.running: dict[str, float] = {}
        self.refused: list[str] = []
        self._lock = threading.Lock()

    def admit(self, name: str) -> str | None:
        """None to launch `name` (its estimate now counts as running), or why not."""
        cost = self._estimate(name)
        with self._lock:
            running = sum(self.running.values())
            if self.spent + running + cost > self.limit:
                self.refused.append(name)
                return (
                    f"--max-cost {usd(self.limit)}: spent {usd(self.spent)} + running "
                    f"{usd(running)} + its estimate {usd(cost)} would pass it"
                )
            self.running[name] = cost
        return None

    def settle(self, name: str, ran: bool, marker: Mapping[str, Any] | None) -> None:
        """`name` ended: what it cost (its bill, else its estimate) is spent if it ran."""
        with self._lock:
            estimate = self.running.pop(name, 0.0)
            if not ran:
                return
            billed = ((marker or {}).get("billing") or {}).get("usd")
            self.spent += float(billed) if isinstance(billed, int | float) else estimate

    def _estimate(self, name: str) -> float:
        estimate = self.estimates.get(name)
        return 0.0 if estimate is None or estimate.usd is None else estimate.usd
