"""ngdbench's report, by role (scripts/report.py is its command line):

    load      reading result files
    model     the result model: metrics, configurations, each optimizer's selection
    protocol  the comparison protocol's arithmetic (docs/protocol.md), its one implementation
    tables    per-experiment tables
    claims    the papers' claims and their verdicts, every measure kind, grouped by paper
    summary   the claims as report blocks and verdict lines
    testresults  test outcomes (CTest JUnit, gtest XML) for the claims that tests decide
    scores    scores and performance profiles across experiments
    figures   plots
    render    Markdown, LaTeX and HTML, and writing files
    cli       the command line: builds the report from the above
    export    the results and verdicts as SQLite and CSV (scripts/export_results.py)
    coverage  how often the claims' intervals hold the true value, simulated (scripts/interval-coverage.py)
"""
