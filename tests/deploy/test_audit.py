"""The dependency audit (``python -m devtools audit``): the suite's own environment has no known
vulnerability with a fix available, and the checker flags what it must (negative controls on real
and synthetic OSV records)."""

from __future__ import annotations

import subprocess
import sys

from devtools.audit import audit, load_db

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_the_installed_environment_has_no_known_vulnerability_with_a_fix_available():
    proc = subprocess.run([sys.executable, "-m", "devtools", "audit"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_affected_version_is_flagged_with_the_version_that_fixes_it():
    _, advisories = load_db()
    flagged = {(f.advisory, f.fixed) for f in audit({"aiohttp": "3.7.0"}, advisories)}
    assert ("PYSEC-2021-76", "3.7.4") in flagged
    assert "PYSEC-2021-76" not in {f.advisory for f in audit({"aiohttp": "3.7.4"}, advisories)}


def _adv(events: list[dict], versions: list[str] | None = None, withdrawn: str | None = None) -> dict:
    adv = {"id": "TEST-1", "affected": [{"package": {"name": "pkg", "ecosystem": "PyPI"},
                                         "ranges": [{"type": "ECOSYSTEM", "events": events}],
                                         "versions": versions or []}]}
    if withdrawn:
        adv["withdrawn"] = withdrawn
    return {"pkg": [adv]}


def test_osv_ranges_are_read_as_osv_defines_them():
    two_ranges = _adv([{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"fixed": "2.1"}])
    hits = {v for v in ("0.9", "1.0", "1.1.5", "1.2", "1.9", "2.0.1", "2.1") if audit({"pkg": v}, two_ranges)}
    assert hits == {"1.0", "1.1.5", "2.0.1"}
    assert not audit({"pkg": "1.0"}, _adv([{"introduced": "0"}]))  # affected, but no fix to upgrade to
    assert not audit({"pkg": "1.0"}, _adv([{"introduced": "0"}, {"fixed": "1.1"}], withdrawn="2024-01-01"))
    assert [f.fixed for f in audit({"pkg": "1.0.3"}, _adv([{"introduced": "0"}, {"fixed": "1.0.4"}]))] == ["1.0.4"]
