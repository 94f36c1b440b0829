"""Rendering: tables as Markdown and LaTeX, a report's blocks as Markdown and HTML, and writing files
so that an interrupted report never leaves a half-written one."""
import html
import os
import tempfile


def markdown_cell(cell):
    """A cell's Markdown: a list of lines is joined with <br> (one table cell, several lines); a "|" in the
    text is escaped so it does not end the cell."""
    text = "<br>".join(cell) if isinstance(cell, list) else cell
    return text.replace("|", "\\|")


def markdown_table(header, cells):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
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
# ("h", level, text), ("p", text), ("table", header, cells), ("img", alt, path), ("md", markdown text;
# HTML shows it preformatted).

def render_markdown(blocks):
    out = []
    for block in blocks:
        if block[0] == "h":
            out.append("#" * block[1] + " " + block[2])
        elif block[0] in ("p", "md"):
            out.append(block[1])
        elif block[0] == "table":
            out.append(markdown_table(block[1], block[2]))
        elif block[0] == "img":
            out.append(f"![{block[1]}]({block[2]})")
        out.append("")
    return "\n".join(out)


def render_html(blocks, title):
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:80em;margin:auto}table{border-collapse:collapse;"
           "font-size:90%}td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}"
           "td:first-child,th:first-child{text-align:left}img{max-width:100%}</style>", "</head><body>"]
    for block in blocks:
        if block[0] == "h":
            out.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif block[0] == "p":
            out.append(f"<p>{html.escape(block[1])}</p>")
        elif block[0] == "table":
            out.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in block[1]) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{html_cell(c)}</td>" for c in row) + "</tr>" for row in block[2]]
            out.append("</table>")
        elif block[0] == "img":
            out.append(f"<p><img src=\"{html.escape(block[2])}\" alt=\"{html.escape(block[1])}\"></p>")
        elif block[0] == "md":
            out.append(f"<pre style=\"white-space:pre-wrap\">{html.escape(block[1])}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(path, text):
    """Writes through a new temporary file (created exclusively, never through a planted link) so an
    interrupted report never leaves a half-written file."""
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".tmp.")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
