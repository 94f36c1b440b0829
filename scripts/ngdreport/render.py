"""Rendering: tables as Markdown and LaTeX, a report's blocks as Markdown and HTML, and writing files
so that an interrupted report never leaves a half-written one."""
import html
import os
import re
import tempfile


def markdown_text(text):
    """Text from the results (experiment, optimizer and setting names, notes) as Markdown that holds no raw
    HTML: a "<" that could open a tag, comment, declaration or autolink, and a "&" that could start an entity
    reference, are escaped, as the HTML report escapes them; "a < b" and "x > 1" stay as written."""
    text = re.sub(r"&(?=#?[A-Za-z0-9]+;)", "&amp;", text)
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def markdown_cell(cell):
    """A cell's Markdown: a list of lines is joined with <br> (one table cell, several lines); a "|" in the
    text is escaped so it does not end the cell."""
    text = "<br>".join(markdown_text(line) for line in cell) if isinstance(cell, list) else markdown_text(cell)
    return text.replace("|", "\\|")


def markdown_table(header, cells):
    lines = ["| " + " | ".join(markdown_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in cells]
    return "\n".join(lines)


def html_cell(cell):
    return "<br>".join(html.escape(line) for line in cell) if isinstance(cell, list) else html.escape(cell)


def latex_escape(text):
    for plain, latex in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                         ("×", r"$\times$"), ("–", "--"), ("—", "---"), ("≥", r"$\geq$"), ("≤", r"$\leq$"),
                         ("∞", r"$\infty$")):
        text = text.replace(plain, latex)
    return text


def latex_table(header, cells, caption):
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
             r"\toprule", " & ".join(latex_escape(c) for c in header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in cells]
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + latex_escape(caption) + "}", r"\end{table}"]
    return "\n".join(lines)


# A report is a list of blocks rendered to Markdown and HTML alike:
# ("h", level, text[, id]), ("p", text), ("table", header, cells), ("img", alt, png path[, svg path]) (Markdown
# shows the PNG, HTML the SVG), ("md", markdown text; HTML shows it preformatted), ("details", summary, blocks)
# (HTML: a collapsed <details>; Markdown: a bold line, then the blocks).

def render_markdown(blocks):
    out = []
    for block in blocks:
        if block[0] == "h":
            out.append("#" * block[1] + " " + markdown_text(block[2]))
        elif block[0] == "p":
            out.append(markdown_text(block[1]))
        elif block[0] == "md":  # the discussion, Markdown written by the report's author
            out.append(block[1])
        elif block[0] == "table":
            out.append(markdown_table(block[1], block[2]))
        elif block[0] == "img":
            out.append(f"![{markdown_text(block[1])}]({block[2]})")
        elif block[0] == "details":
            out.append(f"**{markdown_text(block[1])}**")
            out.append("")
            out.append(render_markdown(block[2]).rstrip("\n"))
        out.append("")
    return "\n".join(out)


# The page: readable width, tables that scroll inside their box instead of widening the page, images
# that shrink to it, long words (paths, test names) that break.
STYLE = ("body{font-family:system-ui,sans-serif;max-width:84em;margin:0 auto;padding:0 1em;line-height:1.4;"
         "overflow-wrap:break-word}"
         ".table{overflow-x:auto;margin:0.5em 0}"
         "table{border-collapse:collapse;font-size:85%}"
         "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right;vertical-align:top}"
         "th{background:#f3f3f3}"
         "td:first-child,th:first-child{text-align:left}"
         "table.words td,table.words th{text-align:left;overflow-wrap:anywhere;min-width:6.5em}"
         "img{max-width:100%;height:auto}"
         "details{margin:0.6em 0}summary{cursor:pointer;font-weight:600}"
         "pre{white-space:pre-wrap}")


def words_table(header, cells):
    """A table of sentences rather than numbers (claims): left-aligned."""
    return any(len(cell if isinstance(cell, str) else " ".join(cell)) > 60 for row in cells for cell in row)


def render_html_blocks(blocks):
    out = []
    for block in blocks:
        if block[0] == "h":
            anchor = f" id=\"{html.escape(block[3])}\"" if len(block) > 3 and block[3] else ""
            out.append(f"<h{block[1]}{anchor}>{html.escape(block[2])}</h{block[1]}>")
        elif block[0] == "p":
            out.append(f"<p>{html.escape(block[1])}</p>")
        elif block[0] == "table":
            kind = " class=\"words\"" if words_table(block[1], block[2]) else ""
            out.append(f"<div class=\"table\"><table{kind}><tr>" +
                       "".join(f"<th>{html.escape(c)}</th>" for c in block[1]) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{html_cell(c)}</td>" for c in row) + "</tr>" for row in block[2]]
            out.append("</table></div>")
        elif block[0] == "img":
            source = block[3] if len(block) > 3 and block[3] else block[2]
            out.append(f"<p><img src=\"{html.escape(source)}\" alt=\"{html.escape(block[1])}\"></p>")
        elif block[0] == "md":
            out.append(f"<pre>{html.escape(block[1])}</pre>")
        elif block[0] == "details":
            out.append(f"<details><summary>{html.escape(block[1])}</summary>")
            out += render_html_blocks(block[2])
            out.append("</details>")
    return out


def render_html(blocks, title):
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
           f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head><body>"]
    out += render_html_blocks(blocks)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(path, text):
    """Writes through a new temporary file (created exclusively, never through a planted link) so an
    interrupted report never leaves a half-written file."""
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".tmp.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
