"""``smoothrl tune``'s objective: an arithmetic expression over evaluation metrics, checked
before any trial (only numbers, metric names and ``+ - * / **``) and computed safely after each
(a division by zero, an overflow or a complex result is one clear error, never a crash).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable

from smoothrl.errors import SmoothRLError
from smoothrl.experiments.sweep import ALIASES

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def compile_objective(text: str, known: set[str]) -> Callable[[dict[str, float]], float]:
    """
    An arithmetic expression over evaluation metrics (``return`` is ``mean_return``).

    :param text: e.g. ``"return - 10 * jerk_rms"``
    :param known: the metric names allowed
    :return: summary -> value
    :raises SmoothRLError: for a syntax error, an unknown name or anything but arithmetic
    """
    source = re.sub(r"\breturn\b", "mean_return", text)  # a Python keyword, so an alias before parsing
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        raise SmoothRLError(
            f"@objective {text!r} is not an arithmetic expression (e.g. 'return - 10 * jerk_rms')"
        ) from None

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            check(node.body)
        elif isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            check(node.operand)
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool)
        ):
            pass
        elif isinstance(node, ast.Name):
            if ALIASES.get(node.id, node.id) not in known:
                names = ", ".join(sorted(known | set(ALIASES)))
                raise SmoothRLError(f"@objective names {node.id!r}, not a metric of this env; use {names}")
        else:
            raise SmoothRLError(f"@objective may hold numbers, metric names and + - * / ** only, got {text!r}")

    check(tree)

    def evaluate(node: ast.AST, summary: dict[str, float]) -> float:
        if isinstance(node, ast.Expression):
            return evaluate(node.body, summary)
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](evaluate(node.left, summary), evaluate(node.right, summary))
        if isinstance(node, ast.UnaryOp):
            return _OPS[type(node.op)](evaluate(node.operand, summary))
        if isinstance(node, ast.Constant):
            return float(node.value)
        return float(summary[ALIASES.get(node.id, node.id)])

    def value(summary: dict[str, float]) -> float:
        try:
            result = evaluate(tree, summary)
        except ZeroDivisionError:
            raise SmoothRLError(f"@objective {text!r} divides by zero on these metrics") from None
        except OverflowError:
            raise SmoothRLError(f"@objective {text!r} overflows on these metrics") from None
        if isinstance(result, complex) or not math.isfinite(result):
            raise SmoothRLError(f"@objective {text!r} is not a finite real number on these metrics ({result!r})")
        return float(result)

    probes = [dict.fromkeys(known, x) for x in (1.0, -1.0, 0.5, 2.0, 10.0, 1000.0)]  # metric values a trial may see
    reasons = []
    for probe in probes:
        try:
            value(probe)
            break
        except SmoothRLError as e:
            reasons.append(str(e))
    else:  # fails whatever the metrics: refuse it before any trial
        raise SmoothRLError(reasons[0].replace("on these metrics", "whatever the metrics") + "; rewrite it")
    return value
