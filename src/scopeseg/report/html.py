"""Self-contained HTML report builder: headings, tables, metric cards, figures and images inline.

Why: evaluation and training reports must open anywhere (no CDN, no network), so every figure and image is
embedded as base64 and the CSS is inline. Blocks are appended in order and rendered once.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import to_rgb_uint8, write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;line-height:1.45}
h1{border-bottom:2px solid #2a6f97;padding-bottom:.2em}h2{color:#2a6f97;margin-top:1.6em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#eef3f7}td.s,th.s{text-align:left}tr:nth-child(even) td{background:#fafafa}
caption{caption-side:bottom;font-size:.85em;color:#555;padding-top:.3em;text-align:left}
figure{margin:1em 0;display:inline-block;vertical-align:top;max-width:100%}
img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}
.grid{display:flex;flex-wrap:wrap;gap:.8em}.grid figure{margin:0}
.cards{display:flex;flex-wrap:wrap;gap:.6em;margin:.8em 0}
.card{border:1px solid #cfdbe5;border-radius:6px;padding:.5em .9em;background:#f5f9fc;min-width:8em}
.card .k{font-size:.8em;color:#555}.card .v{font-size:1.3em;font-weight:600}
pre{background:#f4f4f4;border:1px solid #ddd;padding:.7em;overflow-x:auto;font-size:.85em}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: Any, float_fmt: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return float_fmt.format(v)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _encode_image(rgb: np.ndarray, fmt: str) -> tuple[str, str]:
    import cv2

    arr = to_rgb_uint8(np.asarray(rgb))
    bgr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ext, mime, params = (
        (".jpg", "image/jpeg", [cv2.IMWRITE_JPEG_QUALITY, 90]) if fmt == "jpeg" else (".png", "image/png", [])
    )
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 RGB
        raise RuntimeError("image encoding failed")
    return mime, base64.b64encode(buf.tobytes()).decode("ascii")


class HtmlReport:
    """Ordered blocks rendered into one HTML page with inline CSS and base64 images.

    Why: a report is a single file that can be mailed or archived; no external resources are referenced.
    """

    def __init__(self, title: str):
        self.title = title
        self._blocks: list[str] = []

    def heading(self, text: str, level: int = 2) -> HtmlReport:
        """Append a heading (``level`` 1-6)."""
        level = min(6, max(1, int(level)))
        self._blocks.append(f"<h{level}>{_esc(text)}</h{level}>")
        return self

    def paragraph(self, text: str) -> HtmlReport:
        """Append a paragraph of plain text (escaped)."""
        self._blocks.append(f"<p>{_esc(text)}</p>")
        return self

    def table(
        self,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        float_fmt: str = "{:.4f}",
    ) -> HtmlReport:
        """Append a table of dict rows; columns default to the union of keys in first-seen order."""
        if columns is None:
            seen: dict[str, None] = {}
            for r in rows:
                for k in r:
                    seen.setdefault(str(k), None)
            columns = list(seen)
        parts = ["<table>"]
        if caption:
            parts.append(f"<caption>{_esc(caption)}</caption>")
        parts.append("<tr>" + "".join(f'<th class="s">{_esc(c)}</th>' for c in columns) + "</tr>")
        for r in rows:
            cells = []
            for c in columns:
                v = r.get(c, "")
                cls = "" if _is_number(v) else ' class="s"'
                cells.append(f"<td{cls}>{_esc(_fmt(v, float_fmt))}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
        self._blocks.append("".join(parts))
        return self

    def figure(self, fig: Any, caption: str = "", dpi: int = 100) -> HtmlReport:
        """Append a matplotlib figure as an inline PNG (the figure is closed afterwards)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        self._blocks.append(self._figure_html("image/png", data, caption, None))
        return self

    def image(
        self, rgb: np.ndarray, caption: str = "", max_width: int | None = 480, fmt: str = "jpeg"
    ) -> HtmlReport:
        """Append an RGB (or grey/bool) array as an inline JPEG (``fmt='png'`` for lossless)."""
        mime, data = _encode_image(rgb, fmt)
        self._blocks.append(self._figure_html(mime, data, caption, max_width))
        return self

    def images(
        self, items: Iterable[tuple[np.ndarray, str]], max_width: int | None = 320, fmt: str = "jpeg"
    ) -> HtmlReport:
        """Append a wrapping grid of (array, caption) images."""
        figs = [self._figure_html(*_encode_image(a, fmt), c, max_width) for a, c in items]
        self._blocks.append('<div class="grid">' + "".join(figs) + "</div>")
        return self

    def code(self, text: str) -> HtmlReport:
        """Append preformatted text (a config as YAML, a command line)."""
        self._blocks.append(f"<pre>{_esc(text)}</pre>")
        return self

    def metrics(self, values: Mapping[str, Any], float_fmt: str = "{:.4f}") -> HtmlReport:
        """Append key-value cards (headline numbers)."""
        cards = "".join(
            f'<div class="card"><div class="k">{_esc(k)}</div><div class="v">{_esc(_fmt(v, float_fmt))}</div></div>'
            for k, v in values.items()
        )
        self._blocks.append(f'<div class="cards">{cards}</div>')
        return self

    def html(self, raw: str) -> HtmlReport:
        """Append raw, trusted HTML (caller escapes)."""
        self._blocks.append(raw)
        return self

    @staticmethod
    def _figure_html(mime: str, data: str, caption: str, max_width: int | None) -> str:
        style = f' style="max-width:{int(max_width)}px;width:100%"' if max_width else ""
        cap = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
        return f'<figure><img src="data:{mime};base64,{data}" alt="{_esc(caption)}"{style}>{cap}</figure>'

    def render(self) -> str:
        """Return the full HTML document."""
        body = "\n".join(self._blocks)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_esc(self.title)}</title><style>{_CSS}</style></head>\n"
            f"<body>\n<h1>{_esc(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def save(self, path: str | Path) -> Path:
        """Write the report atomically and return its path."""
        return write_text(path, self.render())
