"""Code lines of a package: lines holding a token that is not a comment, and not inside a docstring.

The count of issue 30 ("src/ code lines, no blank, comment or docstring lines")::

    python3 benchmarks/code_lines.py src/isstad_plugin          # TOTAL <lines> <modules>, largest modules first
"""

from __future__ import annotations

import argparse
import ast
import io
import tokenize
from pathlib import Path

SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
DOCUMENTED = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers of the module, class and function docstrings of ``tree``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        first = node.body[0] if isinstance(node, DOCUMENTED) and node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(source: str) -> int:
    """How many lines of ``source`` hold code."""
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIPPED:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstring_lines(ast.parse(source)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--top", type=int, default=10, help="modules listed")
    args = parser.parse_args()
    rows = sorted((code_lines(p.read_text()), p.relative_to(args.package)) for p in args.package.rglob("*.py"))
    for count, path in rows[::-1][: args.top]:
        print(count, path)
    print("TOTAL", sum(count for count, _ in rows), len(rows))


if __name__ == "__main__":
    main()
