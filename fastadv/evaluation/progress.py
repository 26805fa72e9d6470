"""evaluate()'s progress: per attack a bar of the points attacked, the running estimate of its
robust accuracy and the ETA (on a terminal), then one line with the attack's result (above
where the bar was, or alone outside a terminal: CI, a log file), so that a long AutoAttack or
RayS run shows life. The mechanics (bar or lines, stderr) are
fastadv.training.progress.Progress."""
from __future__ import annotations

from typing import Optional

from fastadv.training.progress import Progress


class AttackProgress(Progress):
    """Progress of one attack ``spec`` over the ``n_attacked`` points (of ``n``) it attacks."""

    def __init__(self, spec: str, n_attacked: int, n: int, enabled: Optional[bool]):
        super().__init__(n_attacked, enabled=enabled, unit="pt", desc=spec)
        self.spec, self.n, self.n_attacked = spec, n, n_attacked
        self.attacked = self.survived = 0

    def batch_done(self, attacked: int, survived: int) -> None:
        """``attacked`` more points done, ``survived`` of them not broken."""
        self.attacked += attacked
        self.survived += survived
        # points misclassified clean are never attacked and never robust, so the estimate
        # scales the survival rate so far by the share of points attacked
        estimate = self.survived / self.attacked * self.n_attacked / max(self.n, 1)
        self.set_postfix(f"robust ~{100 * estimate:.1f}%")
        self.update(attacked)

    def finish(self, robust_accuracy: float, seconds: float) -> None:
        self.close()
        if self.spec == "clean":
            self.line(f"clean: accuracy {100 * robust_accuracy:.2f}% ({self.n} points, "
                      f"{seconds:.1f}s)")
        else:
            self.line(f"{self.spec}: robust accuracy {100 * robust_accuracy:.2f}% "
                      f"({self.n_attacked} of {self.n} points attacked, {seconds:.1f}s)")
