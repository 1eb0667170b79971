"""HTML building blocks for the report pages: Jinja2 templates (autoescaped), tables through pandas' Styler that
sort on click, embedded figures."""

from __future__ import annotations

import html
import math

import jinja2
import pandas as pd
from markupsafe import Markup

from sweeps.reporting import figures

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1.5rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3}th.sortable{cursor:pointer}th.sortable:after{content:" \\2195";color:#999}
td:first-child,th:first-child{text-align:left}.scroll{overflow:auto;max-height:85vh}
thead th{position:sticky;top:0;z-index:1}td.text{text-align:left}
.warn{background:#fff3cd;border:1px solid #e0b000;padding:.6rem;border-radius:4px}
.pass{color:#17702a;font-weight:bold}.fail{color:#b00020;font-weight:bold}
img{max-width:100%;height:auto}section{border-top:2px solid #ccc;margin-top:2rem}code{background:#f3f3f3;padding:0 .2rem}
nav a{margin-right:1rem}
"""

# Click a header to sort by that column (numbers by value, the rest as text); click again to reverse.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.classList.add("sortable");
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === "asc" ? -1 : 1;
      th.dataset.dir = dir === 1 ? "asc" : "desc";
      function key(row) { var t = row.cells[col].textContent.trim(), n = parseFloat(t); return isNaN(n) ? t : n; }
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        return (typeof x === typeof y ? (x > y) - (x < y) : typeof x === "number" ? -1 : 1) * dir; });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def short(value: object) -> str:
    """One number format everywhere: 4 decimals from 0.001 to 10,000 (0.8260), else 3 significant digits in
    scientific notation (3.29e-04); whole numbers as they are; missing values empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"
    if isinstance(value, float):
        return str(int(value))
    return str(value)


def value_text(value: object) -> str:
    """A param value as a space file would write it: floats to 3 significant digits (0.25, 0.000329)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3g}"
    return str(value)


def table(frame: pd.DataFrame, sortable: bool = True, escape: bool = True) -> str:
    """A pandas frame as an HTML table through pandas' Styler: one number format, sticky headers, sortable by
    clicking a header; cells are HTML-escaped unless ``escape`` is False (the caller escaped what it quotes)."""
    styler = frame.style.format(short, na_rep="", escape="html" if escape else None).hide(axis="index")
    out = styler.set_table_attributes(f'class="{"sortable" if sortable else "plain"}"').to_html()
    return f'<div class="scroll">{out}</div>'


def image(fig, alt: str) -> str:
    """A matplotlib figure embedded in the page (SVG, or a HiDPI PNG for pictures)."""
    uri, width = figures.to_data_uri(fig)
    return f'<img alt="{esc(alt)}" width="{width}" src="{uri}">'


def warning(text: str) -> str:
    return f'<p class="warn">{text}</p>'


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "unknown"
    return '<span class="pass">PASS</span>' if ok else '<span class="fail">FAIL</span>'


# Jinja2 escapes every value put into a template; the fragments built here (tables, figures) come in as Markup.
TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("sweeps.reporting", "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(template: str, **values: object) -> str:
    """Fill ``templates/<template>``; strings are escaped, :class:`markupsafe.Markup` fragments kept."""
    return TEMPLATES.get_template(template).render(**values)


def fragment(html_text: str) -> Markup:
    """An HTML fragment built here (its quoted values already escaped), to pass into a template as it is."""
    return Markup(html_text)


def page(title: str, body: str) -> str:
    """A complete, self-contained page: no external script, style, font or image."""
    return render("page.html", title=title, body=fragment(body), css=fragment(CSS), script=fragment(SORT_JS))
