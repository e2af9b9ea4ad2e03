"""The report as one self-contained HTML page: CSS inline, figures embedded as base64 PNG, no
script, no external request of any kind (a Content-Security-Policy forbids them too)."""

from __future__ import annotations

import html
import re

from specdecode.report.document import Block, Cards, Document, Fig, Heading, Para, Section, Table

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f6f7f9; --accent:#2563eb; --good:#16a34a; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background: linear-gradient(135deg, #0f172a 0%, #1e3a8a 100%); color:#f8fafc;
  padding: 34px 0 92px; }
.wrap { max-width: 1080px; margin: 0 auto; padding: 0 28px; }
header.top h1 { margin: 0 0 6px; font-size: 28px; letter-spacing: -0.01em; }
header.top p { margin: 0; color: #cbd5e1; }
header.top code { background: rgba(255,255,255,.12); color: #e2e8f0; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 14px;
  margin-top: -64px; }
.card { background:#fff; border-radius: 12px; padding: 16px 18px;
  box-shadow: 0 1px 3px rgba(15,23,42,.08), 0 8px 24px rgba(15,23,42,.06);
  border-top: 4px solid #cbd5e1; }
.card.good { border-top-color: var(--good); }
.card.bad { border-top-color: #dc2626; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: .06em;
  color: var(--muted); font-weight: 600; }
.card .value { white-space: nowrap; font-size: 25px; font-weight: 700; margin: 4px 0 2px;
  font-variant-numeric: tabular-nums; }
.card .note { font-size: 13px; color: var(--muted); }
nav.toc { margin: 22px 0 0; display:flex; flex-wrap: wrap; gap: 8px; }
nav.toc a { color: var(--accent); text-decoration: none; background:#fff;
  border:1px solid var(--line); border-radius: 999px;
  padding: 4px 14px; font-size: 14px; }
section.block { background:#fff; border-radius: 12px; padding: 8px 28px 24px; margin: 22px 0;
  box-shadow: 0 1px 3px rgba(15,23,42,.06); }
section.block h2 { font-size: 21px; margin: 18px 0 10px; padding-bottom: 8px;
  border-bottom: 1px solid var(--line); }
section.block h3 { font-size: 16px; margin: 26px 0 8px; color: #111827; }
p.muted { color: var(--muted); font-size: 13.5px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: .86em;
  background: #f1f5f9; border-radius: 4px; padding: 1px 5px; overflow-wrap: break-word; }
.table-scroll { overflow-x: auto; margin: 10px 0 4px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; font-variant-numeric: tabular-nums; }
th { text-align: left; background: #f1f5f9; color: #334155; font-weight: 600; font-size: 13px; }
th, td { padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.r, th.r { text-align: right; white-space: nowrap; }
td.c, th.c { text-align: center; }
table.wide { font-size: 12.5px; }
table.wide td { white-space: normal; }
.caption, figcaption { color: var(--muted); font-size: 13px; margin: 4px 0 14px; }
figure { margin: 14px 0 18px; }
figure img { display:block; max-width: 100%; height: auto; border-radius: 6px; }
footer { color: var(--muted); font-size: 13px; text-align: center; padding: 10px 0 40px; }
"""

# nothing may load from anywhere: images are data: URIs, styles inline, the icon empty
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CODE = re.compile(r"(`[^`]*`)")
_WBR = re.compile(r"([(,=/])")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline(text: str) -> str:
    """Escaped HTML with the two inline marks: `code` and **bold**."""
    out = []
    for part in _CODE.split(text):
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            # break opportunities after ( , = / so long calls wrap between arguments
            body = _WBR.sub(r"\1<wbr>", html.escape(part[1:-1], quote=False))
            out.append(f"<code>{body}</code>")
        else:
            out.append(_BOLD.sub(r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


def _table(table: Table) -> str:
    align = table.alignment()
    head = "".join(f'<th class="{a}">{inline(h)}</th>' for h, a in zip(table.header, align))
    body = "".join(
        "<tr>" + "".join(f'<td class="{a}">{inline(c)}</td>' for c, a in zip(row, align)) + "</tr>"
        for row in table.rows
    )
    cls = ' class="wide"' if table.wide else ""
    caption = f'<div class="caption">{inline(table.caption)}</div>' if table.caption else ""
    table_html = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table-scroll">{table_html}</div>{caption}'


def _figure(fig: Fig) -> str:
    file = fig.file
    width = round(file.width_px * 100 / 144)
    return (
        f'<figure id="fig-{html.escape(file.name)}"><img alt="{html.escape(file.name)}" width="{width}" '
        f'src="data:image/png;base64,{file.png_base64}">'
        f"<figcaption>{inline(fig.caption)}</figcaption></figure>"
    )


def _cards(cards: Cards) -> str:
    items = "".join(
        f'<div class="card {html.escape(c.tone)}"><div class="label">{inline(c.label)}</div>'
        f'<div class="value">{inline(c.value)}</div><div class="note">{inline(c.note)}</div></div>'
        for c in cards.items
    )
    return f'<div class="cards">{items}</div>'


def _block(block: Block) -> str:
    if isinstance(block, Para):
        return f'<p class="muted">{inline(block.text)}</p>' if block.muted else f"<p>{inline(block.text)}</p>"
    if isinstance(block, Heading):
        return f"<h3>{inline(block.text)}</h3>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Fig):
        return _figure(block)
    if isinstance(block, Cards):
        return _cards(block)
    return ""


def _section(section: Section) -> str:
    body = "\n".join(_block(b) for b in section.blocks)
    title = f"<h2>{inline(section.title)}</h2>"
    return f'<section class="block" id="{html.escape(section.id)}">{title}\n{body}\n</section>'


def render_html(document: Document) -> str:
    from importlib import metadata

    try:
        version = metadata.version("specdecode")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "dev"
    cards = _cards(document.summary) if document.summary and document.summary.items else ""
    toc = "".join(f'<a href="#{html.escape(s.id)}">{inline(s.title)}</a>' for s in document.sections)
    sections = "\n".join(_section(s) for s in document.sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<link rel="icon" href="data:,">
<title>{html.escape(document.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header class="top"><div class="wrap">
<h1>{inline(document.title)}</h1><p>{inline(document.subtitle)}</p>
</div></header>
<main class="wrap">
{cards}
<nav class="toc">{toc}</nav>
{sections}
</main>
<footer>Written by <code>specdecode report</code> {html.escape(version)} ·
every number here comes from the run's own files.</footer>
</body>
</html>
"""
