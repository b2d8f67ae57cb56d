"""Dependency audit that works offline: installed distributions against a cached snapshot of the
PyPA advisory database (OSV records, https://github.com/pypa/advisory-database).

pip-audit would be the usual tool, but it needs the OSV API or PyPI's per-version JSON, and
neither is reachable from these machines; so this small checker (written by hand) reads the OSV
``affected`` ranges itself. ``python -m devtools audit`` exits 1 when an installed version is
affected by an advisory that names a fixed version (one you can upgrade to), and prints the
snapshot's commit and date so its age is never hidden. ``python -m devtools audit refresh
--from CHECKOUT`` rebuilds ``devtools/advisories.json.gz`` from a clone of the database, keeping the
advisories of every package the environment has installed.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

DB = Path(__file__).resolve().parent / "advisories.json.gz"


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str
    fixed: str
    summary: str

    def __str__(self) -> str:
        return f"{self.package} {self.version}: {self.advisory} (fixed in {self.fixed}) {self.summary}"


def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def _affected_ranges(affected: dict, version: Version) -> tuple[bool, list[str]]:
    """(is ``version`` affected, the fixed versions named) for one OSV ``affected`` entry."""
    fixed_versions, hit = [], False
    for rng in affected.get("ranges", []):
        if rng.get("type") != "ECOSYSTEM":
            continue
        introduced, events = None, rng.get("events", [])
        for event in events:
            if "introduced" in event:
                introduced = Version("0") if event["introduced"] == "0" else Version(event["introduced"])
            elif "fixed" in event or "last_affected" in event:
                bound = Version(event.get("fixed") or event["last_affected"])
                if "fixed" in event:
                    fixed_versions.append(event["fixed"])
                if introduced is not None and introduced <= version and (
                        version < bound if "fixed" in event else version <= bound):
                    hit = True
                introduced = None
        if introduced is not None and introduced <= version:  # open range: every later version
            hit = True
    if str(version) in affected.get("versions", []):
        hit = True
    return hit, fixed_versions


def audit(packages: dict[str, str], advisories: dict[str, list[dict]]) -> list[Finding]:
    findings = []
    for name, raw_version in sorted(packages.items()):
        try:
            version = Version(raw_version)
        except InvalidVersion:
            continue
        for adv in advisories.get(name, []):
            if adv.get("withdrawn"):
                continue
            for affected in adv.get("affected", []):
                if canonicalize_name(affected.get("package", {}).get("name", "")) != name:
                    continue
                hit, fixed = _affected_ranges(affected, version)
                later = sorted((Version(f) for f in fixed if Version(f) > version))
                if hit and later:
                    findings.append(Finding(name, raw_version, adv["id"], str(later[0]),
                                            (adv.get("summary") or adv.get("details", ""))[:100].replace("\n", " ")))
    return findings


def load_db(path: Path = DB) -> tuple[dict, dict[str, list[dict]]]:
    with gzip.open(path, "rt") as fh:
        data = json.load(fh)
    return data["source"], data["advisories"]


def refresh(checkout: Path, path: Path = DB) -> int:
    import yaml

    wanted = set(installed())
    advisories: dict[str, list[dict]] = {}
    for folder in sorted((checkout / "vulns").iterdir()):
        name = canonicalize_name(folder.name)
        if name in wanted:
            advisories[name] = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]
    log = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%H %cI"], capture_output=True, text=True)
    commit, date = (log.stdout.split() + ["unknown", "unknown"])[:2]
    source = {"repository": "https://github.com/pypa/advisory-database", "commit": commit, "date": date}
    with gzip.open(path, "wt") as fh:
        json.dump({"source": source, "advisories": advisories}, fh, sort_keys=True, default=str)
    print(f"{sum(map(len, advisories.values()))} advisories for {len(advisories)} installed packages -> {path}")
    return 0


def add_parser(sub) -> None:
    parser = sub.add_parser("audit", help="audit installed packages against the cached PyPA advisories")
    parser.add_argument("action", nargs="?", default="check", choices=["check", "refresh"])
    parser.add_argument("--from", dest="checkout", type=Path, help="a pypa/advisory-database clone (refresh)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    if args.action == "refresh":
        if not args.checkout:
            print("refresh needs --from CHECKOUT (a clone of pypa/advisory-database)", file=sys.stderr)
            return 2
        return refresh(args.checkout)
    source, advisories = load_db()
    packages = installed()
    findings = audit(packages, advisories)
    print(f"audited {len(packages)} installed distributions against {sum(map(len, advisories.values()))} "
          f"PyPA advisories (snapshot {source['commit'][:12]} of {source['date']})")
    for f in findings:
        print(f"VULNERABLE {f}")
    return 1 if findings else 0
