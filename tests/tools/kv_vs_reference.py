#!/usr/bin/python3
"""Checks `cairn kv ls` / `cairn kv get` against the independent Python OCDBT decoder
(../shared/tools/ocdbt_dump.py) for every database under the given directories: same keys, same
sizes, same locations, same bytes. Exit 0 on agreement, 1 on any difference, 77 when a directory
or the reference decoder is missing (ctest treats 77 as skipped; under CI=true it is a failure)."""
import contextlib, io, os, subprocess, sys

cairn, shared = sys.argv[1], sys.argv[2]
roots = sys.argv[3:]
ci = os.environ.get("CI") == "true"


def skip(why):
    print("skipped:", why)
    sys.exit(1 if ci else 77)


if not os.path.isdir(os.path.join(shared, "tools")):
    skip("../shared is not beside the checkout")
sys.path.insert(0, os.path.join(shared, "tools"))
try:
    import ocdbt_dump
except ImportError as e:  # python3-zstandard missing
    skip(f"reference decoder unavailable: {e}")

dbs = []
for root in roots:
    if not os.path.isdir(root):
        skip(f"{root} does not exist")
    for dirpath, _, files in os.walk(root):
        if "manifest.ocdbt" in files:
            dbs.append(dirpath)
dbs.sort()
problems, checked_keys, checked_dbs, skipped = [], 0, 0, 0
for db in dbs:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            _, entries = ocdbt_dump.dump_db(db)
        except FileNotFoundError:
            skipped += 1  # deliberately damaged fixtures: cairn's own tests check their errors
            continue
    ls = subprocess.run([cairn, "kv", "ls", db], capture_output=True)
    if ls.returncode != 0:
        problems.append(f"{db}: cairn kv ls failed: {ls.stderr.decode()}")
        continue
    lines = [l.split("\t") for l in ls.stdout.decode().splitlines()]
    got = {l[0]: l for l in lines}
    want = {k.decode(): e for k, e in entries.items()}
    if list(got) != sorted(want, key=lambda k: k.encode()):
        problems.append(f"{db}: keys differ: cairn {list(got)[:5]}... reference {sorted(want)[:5]}...")
        continue
    # `cairn kv get` is a process per key: check every key of small databases, a spread sample of big ones.
    # (each `kv get` decodes the database's index again, ~0.3 s for a million keys)
    step = max(1, len(want) // (300 if len(want) <= 10000 else 20))
    sampled = set(list(want)[::step])
    for key, e in want.items():
        l = got[key]
        if int(l[1]) != e["length"]:
            problems.append(f"{db}: {key}: size {l[1]} != {e['length']}")
        if e["inline"]:
            if l[2] != "inline":
                problems.append(f"{db}: {key}: cairn says {l[2:]}, reference says inline")
            value = bytes(e["value"])
        else:
            path = (e["file"][0] + e["file"][1]).decode()
            if l[2:] != [path, str(e["offset"]), str(e["length"])]:
                problems.append(f"{db}: {key}: cairn says {l[2:]}, reference says {path} {e['offset']} {e['length']}")
            value = ocdbt_dump.read_range(db, e["file"], e["offset"], e["length"])
        if key in sampled:
            got_value = subprocess.run([cairn, "kv", "get", db, key], capture_output=True)
            if got_value.returncode != 0 or got_value.stdout != value:
                problems.append(f"{db}: {key}: cairn kv get returned different bytes ({got_value.stderr.decode()})")
        checked_keys += 1
    checked_dbs += 1

for p in problems[:20]:
    print(p)
print(f"{checked_dbs} databases, {checked_keys} keys agree with the reference decoder"
      f" ({skipped} damaged databases skipped), {len(problems)} differences")
if checked_dbs == 0:
    skip("no databases found")
sys.exit(1 if problems else 0)
