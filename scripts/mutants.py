"""`make mutants`: deliberate bugs the suite must catch, one at a time, on a scratch copy.

Each mutant in scripts/mutants.toml names a file, an exact piece of its code, what to put
instead, and the tests that must notice. For each, in turn, this script puts the change in a
scratch copy of the repository (the files git tracks or would track, copied to a temporary
directory: the real tree is never touched), runs only the named tests there, and puts the
code back. A mutant survives when those tests pass; the run fails if any survives, if a
mutant's code is not found exactly once (a stale mutant must not pass silently), or if its
tests cannot run (not found, skipped, a collection error, a timeout). Before the mutants,
the named tests run once on the unchanged copy: they must pass there, or a "caught" would
mean nothing.

The scratch copy's code is what runs: pytest starts with the copy as its working directory
and PYTHONPATH, which comes before the editable install of the real tree (an import hook
that Python consults after PYTHONPATH). Subprocesses inherit the environment, so the
`analytics` console script and `python -m app.http.serving` (every test server)
import the copy's `app`, `realtime` and `rollups` as well, and serve its `web/`; the script
checks that before it starts. Every pytest run creates a database and a Redis key prefix of
its own, so the copy shares the real Postgres and Redis safely.

Why a curated list and not mutmut (or cosmic-ray): those generate every mutation an
operator table allows, thousands here, and run tests for each; this suite runs on real
Redis, Postgres, subprocesses and a browser, so a run would take hours. mutmut 3 mutates
only inside Python functions (not the module-level SQL, key names and constants where many
of our promises live) and neither tool mutates Lua scripts or the tracker's JavaScript,
where the rate limit, the sketches, the publish and `qr_scan` are. Our question is narrower
and sharper: does each promise have a test that fails when that promise is broken? A list
of one precise bug per promise, with the tests that guard it, answers that in minutes.

Usage: python scripts/mutants.py [--only ID ...] [--list] [-v] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "scripts" / "mutants.toml"
PACKAGES = ("app", "realtime", "rollups")


@dataclass(frozen=True)
class Mutant:
    id: str
    what: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    # What the tests' environment adds, e.g. {TEST_REDIS = "cluster"} for a bug that only a
    # Redis Cluster shows (the run then starts a local cluster of its own).
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Outcome:
    mutant: str
    tests: int
    result: str  # caught, survived, stale, error, timeout
    seconds: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "caught"


def load(path: Path = LIST) -> list[Mutant]:
    with path.open("rb") as f:
        document = tomllib.load(f)
    mutants = []
    for entry in document.get("mutant", []):
        missing = {"id", "what", "file", "find", "replace", "tests"} - set(entry)
        if missing:
            raise SystemExit(f"{path.name}: mutant {entry.get('id', '?')} lacks {sorted(missing)}")
        if not entry["find"] or not entry["tests"]:
            raise SystemExit(f"{path.name}: mutant {entry['id']} needs a `find` and tests")
        mutants.append(Mutant(entry["id"], entry["what"], entry["file"], entry["find"],
                              entry["replace"], tuple(entry["tests"]),
                              tuple(sorted(entry.get("env", {}).items()))))
    ids = [m.id for m in mutants]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise SystemExit(f"{path.name}: ids used twice: {sorted(duplicates)}")
    return mutants


def scratch_copy() -> Path:
    """The tracked files and the new ones git would track, as they are in the work tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    target = Path(tempfile.mkdtemp(prefix="analytics-mutants-"))
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the work tree, not yet in the index
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    return target


def environment(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(scratch), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(scratch: Path, env: dict[str, str]) -> None:
    """Fails unless a process started with `env` imports the copy's packages, not the real
    tree's (from /, as a console script does: its own directory first, then PYTHONPATH)."""
    code = "import sys, " + ", ".join(PACKAGES) + "; print('\\n'.join(" \
           + "m.__path__[0] for m in (" + ", ".join(PACKAGES) + ",)))"
    found = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    wrong = [p for p in found if not Path(p).resolve().is_relative_to(scratch.resolve())]
    if wrong:
        raise SystemExit(f"the scratch copy's packages do not win: {wrong}")


def pytest(scratch: Path, env: dict[str, str], tests: tuple[str, ...], timeout: float,
           report: Path) -> tuple[str, str]:
    """Runs the tests in the copy; (result, detail): passed, failed, or an error."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-m", "", f"--junitxml={report}", *tests]
    try:
        run = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no answer in {timeout:.0f} s"
    lines = (run.stdout + run.stderr).strip().splitlines()
    # The assertion that failed, then how the run ended.
    tail = "\n".join([line for line in lines if line.startswith("E ")][:12] + lines[-12:])
    if run.returncode not in (0, 1):
        # 2 interrupted (a collection error), 3 internal error, 4 usage (a test not found),
        # 5 nothing collected: the mutant proves nothing.
        return "error", f"pytest exited {run.returncode}\n{tail}"
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    ran, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    if skipped:
        return "error", f"{skipped} of {ran} tests skipped\n{tail}"
    if run.returncode == 0:
        return "passed", tail
    return "failed", tail


def mutate(scratch: Path, mutant: Mutant) -> str | None:
    """Applies the mutant in the copy; returns the original text, or None when stale."""
    path = scratch / mutant.file
    if not path.is_file():
        return None
    original = path.read_text()
    if original.count(mutant.find) != 1:
        return None
    path.write_text(original.replace(mutant.find, mutant.replace))
    return original


def run_mutant(scratch: Path, env: dict[str, str], mutant: Mutant, timeout: float) -> Outcome:
    started = time.monotonic()
    path = scratch / mutant.file
    original = mutate(scratch, mutant)
    if original is None:
        count = path.read_text().count(mutant.find) if path.is_file() else "no file"
        return Outcome(mutant.id, len(mutant.tests), "stale", 0.0,
                       f"`find` occurs {count} times in {mutant.file}, not once")
    try:
        result, detail = pytest(scratch, {**env, **dict(mutant.env)}, mutant.tests, timeout,
                                scratch / "mutant.xml")
    finally:
        path.write_text(original)
    seconds = time.monotonic() - started
    result = {"failed": "caught", "passed": "survived"}.get(result, result)
    return Outcome(mutant.id, len(mutant.tests), result, seconds, detail)


def table(outcomes: list[Outcome]) -> str:
    width = max(len("mutant"), *(len(o.mutant) for o in outcomes))
    lines = [f"{'mutant':<{width}}  tests  {'result':<8}  seconds",
             f"{'-' * width}  -----  --------  -------"]
    lines += [f"{o.mutant:<{width}}  {o.tests:>5}  {o.result:<8}  {o.seconds:>7.1f}"
              for o in outcomes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show how the tests failed for each caught mutant")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds one mutant's tests may take (default 300)")
    args = parser.parse_args(argv)

    mutants = load()
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            raise SystemExit(f"no such mutants: {sorted(unknown)}")
        mutants = [m for m in mutants if m.id in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.id:<28} {m.file:<28} {m.what}")
        return 0

    started = time.monotonic()
    scratch = scratch_copy()
    try:
        env = environment(scratch)
        check_imports(scratch, env)
        named = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        print(f"{len(mutants)} mutants in {scratch}; first the {len(named)} tests they name, "
              "unchanged", flush=True)
        result, detail = pytest(scratch, env, named, args.timeout * 2, scratch / "baseline.xml")
        if result != "passed":
            print(detail)
            print(f"the named tests do not pass without a mutant ({result}): nothing to measure")
            return 1
        outcomes = []
        for mutant in mutants:
            outcome = run_mutant(scratch, env, mutant, args.timeout)
            outcomes.append(outcome)
            print(f"  {outcome.mutant}: {outcome.result} ({outcome.seconds:.1f} s)", flush=True)
            if (not outcome.ok and outcome.result != "survived") or args.verbose:
                print("    " + outcome.detail.replace("\n", "\n    "), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(table(outcomes))
    bad = [o for o in outcomes if not o.ok]
    print(f"\n{len(outcomes) - len(bad)} of {len(outcomes)} mutants caught in "
          f"{time.monotonic() - started:.0f} s")
    for o in bad:
        mutant = next(m for m in mutants if m.id == o.mutant)
        print(f"  {o.result}: {o.mutant} ({mutant.what}); {mutant.file}; tests: "
              + ", ".join(mutant.tests))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
