"""How artifact summaries word counts, lists and tolerances.

One wording for every mode, so that "3 of 5 values differ" and "1 of 114
rows differs" read alike in a verdict and can be grepped for alike.
"""

from __future__ import annotations

__all__ = ["MAX_EXAMPLES", "differ", "plural", "short_list", "show_number", "tolerance_text"]

# Examples kept per artifact: enough to see the pattern, few enough for a one-line verdict.
MAX_EXAMPLES = 5


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def differ(count: int) -> str:
    return "differs" if count == 1 else "differ"


def short_list(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_EXAMPLES])
    return shown + (f" (+{len(names) - MAX_EXAMPLES} more)" if len(names) > MAX_EXAMPLES else "")


def show_number(value: float | None) -> str:
    return "n/a" if value is None else format(value, ".3g")


def tolerance_text(atol: float, rtol: float) -> str:
    return f"atol {atol:g}, rtol {rtol:g}"
