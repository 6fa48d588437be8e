"""Self-contained HTML pages: sections, tables and figures embedded as base64 PNG.

What the text evaluation report and ``retain report`` are written with: a page needs no other
file, script or network access, so it can be mailed, opened from disk or logged to MLflow.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
"""


def page(title: str, sections: list[str], style: str = "") -> str:
    """A whole HTML document: the title as heading, then the sections in order."""
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}{style}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def section(anchor: str, heading: str, content: str) -> str:
    """A ``<section>`` with an id (for links) and a heading; ``content`` is HTML."""
    return f'<section id="{anchor}">\n<h2>{html.escape(heading)}</h2>\n{content}\n</section>'


def table(frame: pd.DataFrame, floats: int = 3, index: bool = False) -> str:
    """A DataFrame as an HTML table, cells escaped, floats to ``floats`` decimals."""
    return frame.to_html(
        index=index, escape=True, border=0, float_format=lambda v: f"{v:.{floats}f}", na_rep="",
    )


def image(figure: Figure, dpi: int = 100) -> str:
    """A matplotlib figure as an ``<img>`` with the PNG inline; alt text is its first title."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(figure_title(figure))}" src="data:image/png;base64,{data}">'


def figure_title(figure: Figure) -> str:
    """The first axes' title (or the figure's suptitle), on one line; ``figure`` without one."""
    suptitle = getattr(figure, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        return suptitle.get_text().replace("\n", " ")
    axes = figure.get_axes()
    return axes[0].get_title().replace("\n", " ") if axes and axes[0].get_title() else "figure"


def paragraph(text: str) -> str:
    """Plain text as an escaped ``<p>``."""
    return f"<p>{html.escape(text)}</p>"
