#!/usr/bin/env python3
"""Merges and judges the KTAP streams of the VM suite's shards.

    ktap.py merge --plan PLAN --allow-skip ALLOW --out MERGED SHARD_PLAN:SHARD_KTAP...

PLAN lists the suite's tests, one name a line, in the order the merged
stream reports them. Each SHARD_PLAN lists the tests one VM was given, in the
order it ran them; SHARD_KTAP is what that VM's tests/vm/run.sh wrote.

A shard's stream is trusted only when it is whole: "KTAP version 1", a plan
"1..N" with N the size of its SHARD_PLAN, one result per planned test in
order ("ok|not ok <n> <name>"), and a "# Totals:" line that agrees with the
results. A planned test with no result is reported "not ok ... # MISSING";
a test that skips fails unless its reason matches a line of ALLOW (regular
expressions, '#' comments). The merged stream has one plan over every test,
each result's diagnostics, its duration, the totals and the five slowest.

Prints the merged stream and a last line "vm: N passed, M failed, K skipped";
exits 0 only when nothing failed and every shard stream was whole.
"""
import argparse
import re
import sys

RESULT = re.compile(r'^(ok|not ok) (\d+) (\S+)(?: # (.*))?$')
TOTALS = re.compile(r'^# Totals: pass:(\d+) fail:(\d+) skip:(\d+)')
DURATION = re.compile(r'^\s*# duration: (\d+)s$')


class Result:
    def __init__(self, name, ok, directive, diags, secs):
        self.name, self.ok, self.directive, self.diags, self.secs = name, ok, directive, diags, secs

    @property
    def skipped(self):
        return self.ok and self.directive is not None and self.directive.upper().startswith('SKIP')

    @property
    def skip_reason(self):
        return self.directive[4:].strip() if self.skipped else ''


def read_lines(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.read().splitlines()
    except OSError:
        return None


def parse_shard(names, lines, label):
    """Returns (results by name, problems) for one shard's stream."""
    problems = []
    results = {}
    if lines is None:
        return results, [f'{label}: no KTAP stream']
    body = [l for l in lines if l.strip()]
    if not body or body[0] != 'KTAP version 1':
        problems.append(f'{label}: no "KTAP version 1" line')
    plans = [l for l in body if re.fullmatch(r'1\.\.\d+', l)]
    if not plans:
        problems.append(f'{label}: no plan line')
    elif plans[0] != f'1..{len(names)}':
        problems.append(f'{label}: plan {plans[0]}, but it was given {len(names)} tests')
    diags, secs = [], None
    seen = []
    totals = None
    for l in body:
        m = RESULT.match(l)
        if m:
            ok = m.group(1) == 'ok'
            num, name, directive = int(m.group(2)), m.group(3), m.group(4)
            seen.append((num, name))
            if name in results:
                problems.append(f'{label}: {name} reported twice')
            results[name] = Result(name, ok, directive, diags, secs)
            diags, secs = [], None
            continue
        t = TOTALS.match(l)
        if t:
            totals = tuple(int(x) for x in t.groups())
            continue
        d = DURATION.match(l)
        if d:
            secs = int(d.group(1))
        if l.startswith('    ') or l.startswith('\t'):
            diags.append(l.strip())
    expected = list(enumerate(names, 1))
    if seen != expected[:len(seen)]:
        problems.append(f'{label}: results {seen} do not follow its plan {expected}')
    extra = [n for _, n in seen if n not in names]
    if extra:
        problems.append(f'{label}: results for tests it was not given: {" ".join(extra)}')
    if len(seen) < len(names):
        problems.append(f'{label}: stream truncated after {len(seen)} of {len(names)} results')
    if totals is None:
        problems.append(f'{label}: no "# Totals:" line')
    else:
        mine = [r for r in results.values()]
        counted = (sum(1 for r in mine if r.ok and not r.skipped),
                   sum(1 for r in mine if not r.ok), sum(1 for r in mine if r.skipped))
        if counted != totals:
            problems.append(f'{label}: Totals pass:{totals[0]} fail:{totals[1]} skip:{totals[2]} '
                            f'disagree with the results ({counted[0]}/{counted[1]}/{counted[2]})')
    return results, problems


def load_allow(path):
    pats = []
    for l in read_lines(path) or []:
        l = l.strip()
        if l and not l.startswith('#'):
            pats.append(re.compile(l))
    return pats


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument('cmd', choices=['merge'])
    ap.add_argument('--plan', required=True)
    ap.add_argument('--allow-skip', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--durations', help='write "name seconds" lines here')
    ap.add_argument('shards', nargs='+', metavar='SHARD_PLAN:SHARD_KTAP')
    a = ap.parse_args(argv)

    plan = [l.strip() for l in read_lines(a.plan) or [] if l.strip()]
    allow = load_allow(a.allow_skip)
    problems = []
    if not plan:
        problems.append('the plan lists no test')
    results = {}
    given = []
    for i, spec in enumerate(a.shards, 1):
        sp, _, sk = spec.partition(':')
        names = [l.strip() for l in read_lines(sp) or [] if l.strip()]
        given += names
        r, p = parse_shard(names, read_lines(sk), f'shard {i}')
        results.update({k: v for k, v in r.items() if k in names})
        problems += p
    if sorted(given) != sorted(plan):
        problems.append('the shards were not given exactly the planned tests')

    out = ['KTAP version 1', f'1..{len(plan)}']
    npass = nfail = nskip = 0
    for n, name in enumerate(plan, 1):
        r = results.get(name)
        if r is None:
            out.append(f'    # no result: the VM that ran {name} ended first (see its console.log)')
            out.append(f'not ok {n} {name} # MISSING')
            nfail += 1
            continue
        out += ['    ' + d for d in r.diags]
        if r.skipped:
            if any(p.search(r.skip_reason) for p in allow):
                out.append(f'ok {n} {name} # SKIP {r.skip_reason}')
                nskip += 1
            else:
                out.append(f'    # skip reason not on the allow list ({a.allow_skip}): {r.skip_reason}')
                out.append(f'not ok {n} {name} # SKIP not allowed')
                nfail += 1
        elif r.ok:
            out.append(f'ok {n} {name}')
            npass += 1
        else:
            out.append(f'not ok {n} {name}' + (f' # {r.directive}' if r.directive else ''))
            nfail += 1
    for p in problems:
        out.append(f'# harness: {p}')
    out.append(f'# Totals: pass:{npass} fail:{nfail} skip:{nskip}')
    timed = sorted((r for r in results.values() if r.secs is not None), key=lambda r: -r.secs)
    if timed:
        out.append('# slowest: ' + ', '.join(f'{r.name} {r.secs}s' for r in timed[:5]))
    if a.durations:
        with open(a.durations, 'w') as f:
            for r in sorted(timed, key=lambda r: r.name):
                f.write(f'{r.name} {r.secs}\n')
    with open(a.out, 'w') as f:
        f.write('\n'.join(out) + '\n')
    print('\n'.join(out))
    # A broken stream fails the run even when every result present passed.
    if problems and nfail == 0:
        nfail = len(problems)
    print(f'vm: {npass} passed, {nfail} failed, {nskip} skipped')
    return 0 if nfail == 0 and not problems else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
