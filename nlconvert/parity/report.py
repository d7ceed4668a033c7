"""Parity reports a person can read: Markdown, JSON, and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from typing import Any

from ..errors import NLConvertError
from .compare import LayerComparison
from .run import ParityResult

#: What each compared side is, for the reader of a report (the names are the JSON's).
SIDE_LABELS = {
    "torch": "the converted PyTorch model, every layer",
    "onnx": "a temporary ONNX export that outputs every layer (--onnx-layers), in ONNX Runtime",
    "onnx_file": "your ONNX file (--onnx), its final output, in ONNX Runtime",
}


def _sides(result: ParityResult) -> list[str]:
    return [f"{s}: {SIDE_LABELS.get(s, s)}" for s in result.sides]


def _timings(result: ParityResult) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items())


def _verdict(result: ParityResult) -> str:
    return "PASS" if result.ok else "FAIL"


def _class(result: ParityResult, idx: int) -> str:
    names = result.class_names
    return f"{idx} {names[idx]}" if names and 0 <= idx < len(names) else str(idx)


def summary_lines(result: ParityResult) -> list[str]:
    """The verdict, the first diverging layer per side, and top-1 agreement, as text lines."""
    lines = [f"parity {_verdict(result)}: {result.arch.name}, head {result.head}, "
             f"input {'x'.join(map(str, result.input_shape))}"]
    for side in result.sides:
        first = result.first_failure(side)
        rows = [r for r in result.rows if r.side == side]
        worst = max(rows, key=lambda r: r.max_rel_err)
        if first is None:
            lines.append(f"  {side}: all {len(rows)} compared tensors within tolerance "
                         f"(worst rel. error {worst.max_rel_err:.2e} at {worst.name})")
        else:
            lines.append(f"  {side}: first layer out of tolerance: {first.name} "
                         f"(max abs {first.max_abs_err:.3e} > limit {first.limit:.3e}, "
                         f"rel {first.max_rel_err:.2e}, cosine {first.cosine:.6f})")
    lines.append(f"  top-1 agrees with the reference: {'yes' if result.top1_agree else 'NO'}")
    return lines


def to_dict(result: ParityResult) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {
        "ok": result.ok,
        "source": result.source,
        "arch": result.arch.name,
        "arch_reason": result.arch_reason,
        "head": result.head,
        "input_shape": list(result.input_shape),
        "input": result.input_desc,
        "reference_net": result.net_source,
        "tolerance": {"rtol": result.tolerance.rtol, "atol": result.tolerance.atol,
                      "rule": result.tolerance.describe()},
        "first_failure": {s: (f.name if (f := result.first_failure(s)) else None)
                          for s in result.sides},
        "top1_agree": result.top1_agree,
        "topk": result.topk,
        "layers": [r.to_dict() for r in result.rows],
        "skipped": result.skipped,
        "timings_s": result.timings,
        "attention": result.attention.to_dict() if result.attention is not None else None,
    }


def to_json(result: ParityResult) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(to_dict(result)), indent=2)


def _row_md(r: LayerComparison) -> str:
    shape = "x".join(map(str, r.shape))
    mark = "ok" if r.ok else "**FAIL**"
    note = f" {r.note}" if r.note else ""
    return (f"| {r.name} | {r.side} | {shape} | {r.max_abs_err:.3e} | {r.max_rel_err:.2e} | "
            f"{r.cosine:.7f} | {r.limit:.2e} | {mark}{note} |")


def _topk_md(result: ParityResult) -> list[str]:
    lines = ["| clip | side | top-5 classes |", "|---|---|---|"]
    for side, rows in result.topk.items():
        for n, row in enumerate(rows):
            lines.append(f"| {n} | {side} | {', '.join(_class(result, i) for i in row)} |")
    return lines


def to_markdown(result: ParityResult) -> str:
    """The report as Markdown."""
    out = [f"# Parity report: {result.arch.name} ({_verdict(result)})", ""]
    out += [f"- checkpoint: `{result.source}`",
            f"- architecture: {result.arch.describe()} ({result.arch_reason})",
            f"- head: {result.head}; input {'x'.join(map(str, result.input_shape))}, "
            f"{result.input_desc}",
            f"- reference: numpy Caffe2 operators running the net {result.net_source}",
            f"- tolerance used by every check: {result.tolerance.describe()}",
            *[f"- side {line}" for line in _sides(result)],
            f"- timings (seconds): {_timings(result)}", ""]
    out += ["## Summary", "", *[f"    {line}" for line in summary_lines(result)], ""]
    out += ["## Layers", "",
            "| blob | side | shape | max abs err | max rel err | cosine | limit | result |",
            "|---|---|---|---|---|---|---|---|"]
    out += [_row_md(r) for r in result.rows]
    if result.skipped:
        out += ["", "Not compared: " + "; ".join(result.skipped)]
    out += ["", "## Top-5", "", *_topk_md(result), ""]
    return "\n".join(out)


def error_plot_svg(result: ParityResult, width: int = 760, height: int = 260) -> str:
    """An inline SVG of the relative error by depth (log scale), one line per side."""
    pad_l, pad_r, pad_t, pad_b = 60, 20, 20, 40
    sides = result.sides
    colors = {"torch": "#1f77b4", "onnx": "#d62728", "onnx_file": "#ff7f0e"}
    rows = {s: [r for r in result.rows if r.side == s] for s in sides}
    # Depth = position in the longest side's list of layers (a side that compares only the
    # final output, like an ONNX file, is drawn at the head, not at the stem).
    order = [r.name for r in max(rows.values(), key=len, default=[])]
    n = max(len(order), 1)

    def depth(r: LayerComparison, i: int) -> int:
        return order.index(r.name) if r.name in order else i
    vals = [max(r.max_rel_err, 1e-12) for v in rows.values() for r in v if math.isfinite(r.max_rel_err)]
    lo = math.floor(math.log10(min(vals + [1e-9])))
    hi = max(math.ceil(math.log10(max(vals + [result.tolerance.rtol * 10]))), lo + 1)

    def x(i: int) -> float:
        return pad_l + (width - pad_l - pad_r) * (i / max(n - 1, 1))

    def y(v: float) -> float:
        v = min(max(v, 10.0**lo), 10.0**hi)
        return pad_t + (height - pad_t - pad_b) * (hi - math.log10(v)) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">']
    for e in range(lo, hi + 1):
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(10.0**e):.1f}" '
                     f'y2="{y(10.0**e):.1f}" stroke="#ddd"/>'
                     f'<text x="{pad_l - 6}" y="{y(10.0**e) + 4:.1f}" text-anchor="end">1e{e}</text>')
    ty = y(result.tolerance.rtol)
    parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{ty:.1f}" y2="{ty:.1f}" '
                 f'stroke="#999" stroke-dasharray="4 3"/><text x="{width - pad_r}" y="{ty - 4:.1f}" '
                 f'text-anchor="end" fill="#666">rtol {result.tolerance.rtol:g}</text>')
    for s, rs in rows.items():
        pts = " ".join(f"{x(depth(r, i)):.1f},"
                       f"{y(r.max_rel_err if math.isfinite(r.max_rel_err) else 10.0**hi):.1f}"
                       for i, r in enumerate(rs))
        color = colors.get(s, "#2ca02c")
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>')
        for i, r in enumerate(rs):
            if not r.ok or len(rs) == 1:  # failures, and a lone point a polyline would not show
                cy = y(10.0**hi) if not r.ok else y(max(r.max_rel_err, 1e-12))
                parts.append(f'<circle cx="{x(depth(r, i)):.1f}" cy="{cy:.1f}" r="3" '
                             f'fill="{color}"><title>{html.escape(r.name)}</title></circle>')
    legend = " ".join(f'<tspan fill="{colors.get(s, "#2ca02c")}">&#9632; {s}</tspan>' for s in sides)
    parts.append(f'<text x="{pad_l}" y="{height - 10}">layer depth (stem to head); '
                 f'max relative error, log scale. {legend}</text></svg>')
    return "".join(parts)


def attention_html(result: ParityResult) -> str:
    """The report's attention section: one block's picture for one query, as
    ``nlconvert attention`` draws it (an embedded PNG; Pillow, the ``[viz]`` extra)."""
    view = result.attention
    if view is None:
        return ""
    esc = html.escape
    q = view.query
    block = view.block
    entropy = float(block.entropy()[q.t, q.y, q.x])
    err = ("not written by the reference net" if view.max_abs_err is None
           else f"max abs difference from the reference's blob {view.max_abs_err:.3e}")
    head = (f"<h2>Non-local attention</h2><p>Block <code>{esc(block.name)}</code> (Caffe2 blob "
            f"<code>{esc(block.caffe2_blob)}</code>, {'x'.join(map(str, block.weights.shape))}; "
            f"{esc(err)}), clip 0, query t={q.t} y={q.y} x={q.x} (its most concentrated, "
            f"entropy {entropy:.3f} of at most {block.max_entropy():.3f} nats). The heat map is "
            "the query's attention over every position, on the clip's frames; "
            "<code>nlconvert attention</code> draws every block and query.</p>")
    try:
        from ..attention.pictures import clip_frames, render_query
        image = render_query(block, q, clip_frames(view.clip))
    except NLConvertError as exc:  # Pillow missing: say how to get the picture
        return head + f"<p>{esc(str(exc))}</p>"
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return head + (f'<img alt="attention of {esc(block.name)}" style="max-width:100%" '
                   f'src="data:image/png;base64,{data}">')


def to_html(result: ParityResult) -> str:
    """A self-contained HTML page: summary, error-by-depth plot, layer table, top-5, and one
    non-local block's attention picture."""
    esc = html.escape
    rows = []
    for r in result.rows:
        style = "" if r.ok else ' style="background:#fdd"'
        rows.append(f"<tr{style}><td>{esc(r.name)}</td><td>{r.side}</td>"
                    f"<td>{'x'.join(map(str, r.shape))}</td><td>{r.max_abs_err:.3e}</td>"
                    f"<td>{r.max_rel_err:.2e}</td><td>{r.cosine:.7f}</td><td>{r.limit:.2e}</td>"
                    f"<td>{'ok' if r.ok else 'FAIL'} {esc(r.note)}</td></tr>")
    topk = "".join(
        f"<tr><td>{n}</td><td>{side}</td><td>{esc(', '.join(_class(result, i) for i in row))}</td></tr>"
        for side, rs in result.topk.items() for n, row in enumerate(rs)
    )
    summary = "<br>".join(esc(line) for line in summary_lines(result))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Parity {esc(result.arch.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
.v{{font-size:20px;font-weight:bold;color:{'#080' if result.ok else '#b00'}}}</style></head>
<body><h1>Parity report: {esc(result.arch.name)}</h1>
<p class="v">{_verdict(result)}</p><p style="font-family:monospace">{summary}</p>
<ul><li>checkpoint: <code>{esc(result.source)}</code></li>
<li>architecture: {esc(result.arch.describe())} ({esc(result.arch_reason)})</li>
<li>head {result.head}, input {'x'.join(map(str, result.input_shape))}, {esc(result.input_desc)}</li>
<li>reference: numpy Caffe2 operators running the net {esc(result.net_source)}</li>
<li>tolerance used by every check: {esc(result.tolerance.describe())}</li>
{''.join(f"<li>side {esc(line)}</li>" for line in _sides(result))}
<li>timings (seconds): {esc(_timings(result))}</li></ul>
<h2>Error by depth</h2>{error_plot_svg(result)}
<h2>Layers</h2><table><tr><th>blob</th><th>side</th><th>shape</th><th>max abs err</th>
<th>max rel err</th><th>cosine</th><th>limit</th><th>result</th></tr>{''.join(rows)}</table>
<h2>Top-5</h2><table><tr><th>clip</th><th>side</th><th>classes</th></tr>{topk}</table>
{attention_html(result)}
</body></html>
"""
