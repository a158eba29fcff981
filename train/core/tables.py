"""The one table renderer: aligned plain-text tables for terminals and logs, Markdown tables for READMEs.

Every table the recipes, the demo, the examples and the benchmarks print goes through [`render_table`], so cells are
formatted one way: `None` is `-`, floats follow `float_format`, anything else is `str(value)` (pass a string to
format a cell yourself, e.g. `f"{mean:.3f} ± {std:.3f}"`).
"""

from collections.abc import Sequence


def format_cell(value, float_format: str = ".4g") -> str:
    """A table cell as text: `-` for a missing value, floats with `float_format`."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, float_format)
    return str(value)


def render_table(
    header: Sequence[str], rows: Sequence[Sequence], markdown: bool = False, float_format: str = ".4g"
) -> str:
    """`header` and `rows` as an aligned text table (columns left-aligned, a rule under the header), or as a
    Markdown table with `markdown=True`."""
    header = [str(cell) for cell in header]
    rows = [[format_cell(cell, float_format) for cell in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


__all__ = ["format_cell", "render_table"]
