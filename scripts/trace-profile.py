#!/usr/bin/env python3
"""Sums the time of VM test traces (tests/vm/run.sh with TEST_TRACE=1).

Usage: scripts/trace-profile.py [--top N] TRACE...

Each trace line is "+<epoch> <file>:<line> <command>" (one "+" per nesting
level). The time from one line to the next is charged to the first line's
file:line, so a function's body is charged where its commands are; a command
that waits (fio, sleep, a poll loop) shows up as the line it was waiting in.
Prints, per trace, its total and its N most expensive lines, then the N most
expensive lines over all traces.
"""
import os
import re
import sys
from collections import defaultdict

LINE = re.compile(r'^\++(\d+\.\d+) (\S+?):(\d+) ?(.*)$')


def profile(path):
    rows = []
    with open(path, errors='replace') as f:
        for raw in f:
            m = LINE.match(raw.rstrip('\n'))
            if m:
                rows.append((float(m.group(1)), f'{m.group(2)}:{m.group(3)}', m.group(4)[:90]))
    cost = defaultdict(float)
    example = {}
    for (t, where, cmd), (t2, _, _) in zip(rows, rows[1:]):
        cost[where] += t2 - t
        example.setdefault(where, cmd)
    total = rows[-1][0] - rows[0][0] if len(rows) > 1 else 0.0
    return total, cost, example


def main():
    args = sys.argv[1:]
    top = 8
    if args[:1] == ['--top']:
        top = int(args[1])
        args = args[2:]
    overall = defaultdict(float)
    examples = {}
    for path in args:
        name = os.path.basename(path).removesuffix('.trace')
        total, cost, example = profile(path)
        print(f'{name}: {total:.1f} s traced')
        for where, secs in sorted(cost.items(), key=lambda kv: -kv[1])[:top]:
            print(f'  {secs:7.1f} s  {where:28} {example[where]}')
            overall[f'{name} {where}'] += secs
            examples[f'{name} {where}'] = example[where]
    print('over all traces:')
    for where, secs in sorted(overall.items(), key=lambda kv: -kv[1])[:top * 3]:
        print(f'  {secs:7.1f} s  {where:44} {examples[where][:60]}')


if __name__ == '__main__':
    main()
