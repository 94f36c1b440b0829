#!/usr/bin/python3
"""The outcomes of the tests the claims file names, for the report (scripts/ngdreport/testresults.py;
`scripts/test-verdicts.py --help` says more)."""
import sys

from ngdreport.testresults import main

if __name__ == "__main__":
    sys.exit(main())
