"""HtmlReport: self-contained output, escaping, tables, images, atomic save."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from scopeseg.report import HtmlReport


def test_report_blocks_and_save(tmp_path):
    rep = HtmlReport("Run <1>")
    rep.heading("Scores").paragraph("a & b").metrics({"dice": 0.91234567, "n": 3, "hd": float("nan")})
    rep.table([{"name": "x", "dice": 0.5}, {"name": "y", "iou": 1 / 3}], caption="per item")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    rep.figure(fig, "curve")
    img = np.zeros((8, 10, 3), np.uint8)
    rep.image(img, "black").images([(img, "a"), (np.ones((4, 4), bool), "b")]).code("lr: 0.1\n")
    text = rep.render()
    assert "Run &lt;1&gt;" in text and "a &amp; b" in text
    assert "0.9123" in text and "NaN" in text and "0.3333" in text
    assert text.count("data:image/png;base64,") == 1 and text.count("data:image/jpeg;base64,") == 3
    assert "http://" not in text and "https://" not in text
    out = rep.save(tmp_path / "r.html")
    assert out.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
