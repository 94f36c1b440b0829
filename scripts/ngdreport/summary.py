"""The report's summary blocks: every claim of every paper with its verdict (claims.py computes them),
grouped by paper; the claims measured on one experiment; the verdict lines `make tables` prints."""
from . import claims as verdicts
from .claims import CLAIM_HEADER, claim_comparison, report_name, verdict_text

PAPER_HEADER = ["claim", "verdict of the claim", "entry: what is compared", "published",
                "measured here [interval] at its level → verdict", "verdict of the entry"]


def measurement_line(m):
    """"exp@cpu: 1.20× [1.01×, 1.41×] at 90 % → reproduced (…)" or "exp: not measurable here (why)"."""
    where = report_name(m.experiment, m.scale) + ": " if m.experiment else ""
    if m.verdict in (verdicts.NOT_MEASURABLE, verdicts.NOT_MEASURED) and m.text in ("—", "not run"):
        return where + verdict_text(m.verdict, m.note)
    return f"{where}{m.text} → {verdict_text(m.verdict, m.note)}"


def paper_blocks(entries, heading_level=3):
    """Per paper a heading and a table: one row per entry, the claim's id and verdict on its first row."""
    blocks = []
    for paper, claims in verdicts.by_paper(entries).items():
        cells = []
        for identifier, group in claims.items():
            for position, entry in enumerate(group):
                claim = entry.claim
                measure = claim.get("measure") or {}
                lines = [measurement_line(m) for m in entry.measurements]
                if entry.note:
                    lines.append(entry.note)
                cells.append([identifier if position == 0 else "",
                              verdicts.claim_verdict_of(group) if position == 0 else "",
                              f"{claim.get('description', '')} ({claim_comparison(measure)})",
                              str(claim.get("value", "")), lines, entry.verdict])
        blocks += [("h", heading_level, paper), ("table", PAPER_HEADER, cells)]
    return blocks


def verdict_summary(entries):
    """One sentence: how many claims and entries got which verdict."""
    groups = [group for claims in verdicts.by_paper(entries).values() for group in claims.values()]
    return (f"{len(groups)} claims ({len(entries)} entries of the claims file) over "
            f"{len(verdicts.by_paper(entries))} papers: " +
            verdicts.verdict_counts([verdicts.claim_verdict_of(group) for group in groups]) + ".")


def experiment_claim_rows(entries, experiment, scale):
    """CLAIM_HEADER rows of the entries measured on one experiment at one scale."""
    cells = []
    for entry in entries:
        for m in entry.measurements:
            if m.experiment == experiment and m.scale == scale:
                claim = entry.claim
                cells.append([claim.get("description", ""), claim.get("source", ""), str(claim.get("value", "")),
                              claim.get("scale", ""), claim_comparison(claim.get("measure") or {}), m.text,
                              verdict_text(m.verdict, m.note), scale or "as written"])
    return cells


def findings(entries, experiment, scale):
    """"Why, for …" paragraphs of the entries measured on the experiment that carry a finding."""
    seen, out = set(), []
    for entry in entries:
        finding = entry.claim.get("finding")
        if finding and any(m.experiment == experiment and m.scale == scale for m in entry.measurements):
            text = f"Why, for \u201c{entry.claim.get('description', '')}\u201d: {finding}"
            if text not in seen:
                seen.add(text)
                out.append(("p", text))
    return out


def verdict_lines(entries):
    """The lines `make tables` prints: one per measurement on an experiment with results, one per claim."""
    lines = []
    for entry in entries:
        for m in entry.measurements:
            if m.experiment and m.scale is not None and m.verdict != verdicts.NOT_MEASURED:
                lines.append(f"verdict: {report_name(m.experiment, m.scale)}: {entry.claim.get('description', '')} "
                             f"({entry.claim.get('source', '')}): {m.text}: {verdict_text(m.verdict, m.note)}")
    for paper, claims in verdicts.by_paper(entries).items():
        for identifier, group in claims.items():
            lines.append(f"claim: {paper}: {identifier}: {verdicts.claim_verdict_of(group)}")
    return lines


__all__ = ["CLAIM_HEADER", "paper_blocks", "verdict_summary", "experiment_claim_rows", "findings", "verdict_lines"]
