#!/usr/bin/python3
"""Exports ngdbench result files as tables, an SQLite database and tidy CSV files, with the claims'
verdicts: the command line of scripts/ngdreport/export.py (`scripts/export_results.py --help` says more)."""
import sys

from ngdreport.export import main

if __name__ == "__main__":
    sys.exit(main())
