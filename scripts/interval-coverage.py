#!/usr/bin/python3
"""How often a claim's interval holds the true value, simulated with the spreads of committed runs: the
coverage table of docs/protocol.md (scripts/ngdreport/coverage.py says how)."""
from ngdreport.coverage import main

if __name__ == "__main__":
    main()
