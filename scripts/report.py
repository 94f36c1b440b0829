#!/usr/bin/python3
"""Turns ngdbench result files into paper-style tables, plots and a report: the command line of the
ngdreport package (scripts/ngdreport/cli.py; `scripts/report.py --help` says more)."""
from ngdreport.cli import main

if __name__ == "__main__":
    main()
