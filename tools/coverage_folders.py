#!/usr/bin/python3
"""coverage_folders.py - line coverage per folder of src/ from gcovr's JSON summary

usage: tools/coverage_folders.py build/cov/coverage.json [--min PERCENT]

Prints one line per folder (src/queue, src/smtpd, ...): lines covered,
lines total, percentage, then the total for src/. With --min, exits 1 when
the total is below PERCENT.
"""
import json
import os
import sys


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        summary = json.load(f)
    minimum = None
    if "--min" in argv:
        minimum = float(argv[argv.index("--min") + 1])
    folders = {}
    for entry in summary.get("files", []):
        name = entry["filename"]
        folder = os.path.dirname(name) or "."
        cov, tot = folders.get(folder, (0, 0))
        folders[folder] = (cov + entry["line_covered"], tot + entry["line_total"])
    print("%-16s %8s %8s %7s" % ("folder", "covered", "lines", "cover"))
    all_cov = all_tot = 0
    for folder in sorted(folders):
        cov, tot = folders[folder]
        all_cov += cov
        all_tot += tot
        print("%-16s %8d %8d %6.1f%%" % (folder, cov, tot, 100.0 * cov / tot if tot else 0))
    pct = 100.0 * all_cov / all_tot if all_tot else 0.0
    print("%-16s %8d %8d %6.1f%%" % ("src (total)", all_cov, all_tot, pct))
    if minimum is not None and pct < minimum:
        print("line coverage %.1f%% is below %.1f%%" % (pct, minimum), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
