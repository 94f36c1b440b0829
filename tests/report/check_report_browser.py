#!/usr/bin/python3
"""The HTML report in a real browser: renders the report of the fixture folder (tests/report/fixtures/runs,
its claims and test outcomes) in headless Chromium at two window widths and checks that every image
loads, nothing sticks out of the page's width (wide tables scroll inside their own box), the summary is
the first section and on the first screen, and the per-trial tables are collapsed below it; and that these
checks fail on a page broken on purpose (a missing image, a block wider than the window, a section and an
open per-trial table above the summary).

    check_report_browser.py [--screenshot DIR]   also save DIR/report-<width>.png of the whole page

Skipped (exit 77, which CTest's SKIP_RETURN_CODE counts as skipped) with one line when Chromium is not
installed: `scripts/install-deps.sh --browser` installs Debian's chromium. NGDBENCH_CHROMIUM names
another binary. Only the standard library: the page gets a script that writes its findings into the DOM,
and `chromium --dump-dom` prints the DOM after the page has loaded.
"""
import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "..", "..", "scripts", "report.py")
FIXTURES = os.path.join(HERE, "fixtures")
WIDTHS = (1280, 800)
SKIP = 77

# Runs once the page and its images have loaded; writes what it found into <pre id="ngdbench-probe">.
PROBE = r"""<script>
window.addEventListener("load", () => {
  const found = {viewport: window.innerWidth, scrollWidth: document.documentElement.scrollWidth};
  const images = Array.from(document.images);
  found.images = images.length;
  found.broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src"));
  found.overflowing = [];
  for (const element of document.body.querySelectorAll("*")) {
    if (element.closest(".table") && !element.classList.contains("table")) continue;  // scrolls in its box
    if (element.closest("details:not([open])")) continue;  // not shown
    const box = element.getBoundingClientRect();
    if (box.width > 0 && box.right > window.innerWidth + 1) {
      found.overflowing.push(element.tagName.toLowerCase() + (element.id ? "#" + element.id : "") + " right " +
                             Math.round(box.right) + ": " + (element.textContent || "").trim().slice(0, 60));
    }
  }
  const headings = Array.from(document.querySelectorAll("h2"));
  const summary = document.getElementById("summary");
  found.firstSection = headings.length ? headings[0].id : null;
  found.summaryTop = summary ? Math.round(summary.getBoundingClientRect().top + window.scrollY) : null;
  const after = (a, b) => !!(a && b && (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING));
  const claims = document.getElementById("claims"), experiments = document.getElementById("experiments");
  found.claimsInSummary = after(summary, claims) && after(claims, experiments);
  const details = Array.from(document.querySelectorAll("details"));
  found.details = details.length;
  found.detailsOpen = details.filter(d => d.open).length;
  found.detailsBeforeSummary = details.filter(d => !after(summary, d)).length;
  found.detailsWithTables = details.filter(d => d.querySelector("table")).length;
  const probe = document.createElement("pre");
  probe.id = "ngdbench-probe";
  probe.textContent = JSON.stringify(found);
  document.body.appendChild(probe);
});
</script>"""


def chromium():
    named = os.environ.get("NGDBENCH_CHROMIUM")
    if named:
        return named if shutil.which(named) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def browser_args(binary, profile, width, height):
    return [binary, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--mute-audio",
            "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},{height}",
            "--run-all-compositor-stages-before-draw", "--virtual-time-budget=20000"]


def probe(binary, page, profile, width):
    """What the probe script found on `page` at `width` pixels."""
    process = subprocess.run(browser_args(binary, profile, width, 900) + ["--dump-dom", "file://" + page],
                             capture_output=True, text=True, timeout=180)
    match = re.search(r'<pre id="ngdbench-probe">(.*?)</pre>', process.stdout, re.S)
    if not match:
        raise RuntimeError(f"no probe result at width {width} (exit {process.returncode}): {process.stderr[-2000:]}")
    return json.loads(html.unescape(match.group(1)))


def problems(found):
    out = []
    if found["images"] < 10:
        out.append(f"only {found['images']} images on the page")
    if found["broken"]:
        out.append(f"images that did not load: {found['broken']}")
    if found["scrollWidth"] > found["viewport"]:
        out.append(f"the page is {found['scrollWidth']} px wide in a {found['viewport']} px window")
    if found["overflowing"]:
        out.append(f"{len(found['overflowing'])} elements stick out of the page: {found['overflowing'][:5]}")
    if found["firstSection"] != "summary":
        out.append(f"the first section is {found['firstSection']!r}, not the summary")
    if found["summaryTop"] is None or found["summaryTop"] > 600:
        out.append(f"the summary starts {found['summaryTop']} px down, not on the first screen")
    if not found["claimsInSummary"]:
        out.append("the claims are not in the summary, before the experiments")
    if found["details"] < 4 or found["detailsOpen"] or found["detailsBeforeSummary"]:
        out.append(f"per-trial tables: {found['details']} collapsible sections, {found['detailsOpen']} open, "
                   f"{found['detailsBeforeSummary']} before the summary")
    if found["detailsWithTables"] < 4:
        out.append(f"only {found['detailsWithTables']} collapsible sections hold a table")
    return out


def check_catches_a_broken_page(binary, out, page, work):
    """The checks must fail on a page with a missing image, a block wider than the window, an open
    per-trial section above the summary and a section before it."""
    os.remove(os.path.join(out, "plots", "profiles@cpu.svg"))
    broken = page.replace("<body>", "<body><h2 id=\"before\">Before</h2><div style=\"width:3000px\">wide</div>"
                                    "<details open><summary>trials</summary><table><tr><td>1</td></tr></table></details>", 1)
    probed = os.path.join(out, "broken.html")
    with open(probed, "w", encoding="utf-8") as file:
        file.write(broken.replace("</body>", PROBE + "\n</body>"))
    found = problems(probe(binary, probed, os.path.join(work, "profile-broken"), WIDTHS[0]))
    expected = ("images that did not load", "elements stick out", "the page is", "the first section is",
                "per-trial tables")
    missed = [e for e in expected if not any(p.startswith(e) or e in p for p in found)]
    print(f"check_report_browser: a broken page: {len(found)} problems found"
          + (f", but not: {missed}" if missed else ""))
    return [f"the checks miss on a broken page: {m}" for m in missed]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screenshot", metavar="DIR", help="save a screenshot of the whole page per width")
    args = parser.parse_args()
    binary = chromium()
    if binary is None:
        print("check_report_browser: skipped: Chromium is not installed (scripts/install-deps.sh --browser)")
        return SKIP
    failures = []
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "report")
        subprocess.run([sys.executable, REPORT, os.path.join(FIXTURES, "runs"), "--out", out, "--claims",
                        os.path.join(FIXTURES, "claims.json"), "--test-results",
                        os.path.join(FIXTURES, "test-outcomes", "ctest-junit.xml")], check=True, capture_output=True)
        with open(os.path.join(out, "report.html"), encoding="utf-8") as file:
            page = file.read()
        probed = os.path.join(out, "probe.html")  # beside the report, so its images resolve the same way
        with open(probed, "w", encoding="utf-8") as file:
            file.write(page.replace("</body>", PROBE + "\n</body>"))
        for width in WIDTHS:
            found = probe(binary, probed, os.path.join(work, f"profile-{width}"), width)
            print(f"check_report_browser: {width} px: {found['images']} images ({len(found['broken'])} broken), page "
                  f"{found['scrollWidth']} px wide, summary at {found['summaryTop']} px, {found['details']} "
                  f"collapsed sections")
            failures += [f"{width} px: {problem}" for problem in problems(found)]
            if args.screenshot:
                os.makedirs(args.screenshot, exist_ok=True)
                shot = os.path.join(os.path.abspath(args.screenshot), f"report-{width}.png")
                subprocess.run(browser_args(binary, os.path.join(work, f"shot-{width}"), width, 6000) +
                               [f"--screenshot={shot}", "file://" + os.path.join(out, "report.html")],
                               capture_output=True, timeout=180)
        failures += check_catches_a_broken_page(binary, out, page, work)
    for failure in failures:
        print("check_report_browser: FAIL:", failure)
    print(f"check_report_browser: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
