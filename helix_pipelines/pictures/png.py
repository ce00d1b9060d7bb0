"""A figure as PNG bytes with a 256-colour palette: pictures go into Dagster's event log with
every materialization (a base64 data URL), and a palette makes a noisy heatmap about a fifth of
its true-colour size (BTC model 3 1y: 458 KB -> 93 KB) at no visible cost."""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from PIL import Image


def figure_png(figure: Figure, dpi: int) -> bytes:
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=dpi)
    rendered.seek(0)
    with Image.open(rendered) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()
