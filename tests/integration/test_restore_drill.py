"""The restore drill (scripts/restore-drill, docs/security/backup-and-restore.md scenario 1) on the
REAL stack: a PostgreSQL server and the Object Lock S3 server (Ceph RGW, never moto).

The script creates its own databases and a new bucket, takes a ``pg_dump -Fc``, writes more
records, drops the database, restores the dump and checks what the documentation promises:
the objects written after the backup are orphans (not lost), quarantined by ``pdm reconcile
--repair``; nothing restored is missing or damaged; ``pdm verify-audit`` flags the checkpoint
taken after the backup. Availability (IMDRF N60 / DITTA, DOMAIN.md §8; records readily
retrievable, 21 CFR 11.10(c)).

Needs ``PDM_TEST_S3_ENDPOINT_URL`` (as tests/integration/test_s3_store.py) and a PostgreSQL
server: ``PDM_TEST_DATABASE_URL`` when it is PostgreSQL, else ``PDM_TEST_POSTGRES_URL``
(scripts/test runs it once, in its PostgreSQL pass). Without them the test is skipped, and CI
(``PDM_FAIL_ON_SKIP=1``) fails. The drill's databases are ``<database of the URL>_drill_src``
and ``…_drill_dst`` (or ``RESTORE_DRILL_SOURCE_DB`` / ``RESTORE_DRILL_RESTORED_DB``), dropped
afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.s3
ROOT = Path(__file__).resolve().parent.parent.parent
DRILL_TIMEOUT_S = 1800  # a hang bound, not a speed test (2-3 min alone, 11 min on a busy box)


def _postgres() -> tuple[str, str]:
    """(libpq URL of the server without a database, database-name prefix)."""
    for name in ("PDM_TEST_DATABASE_URL", "PDM_TEST_POSTGRES_URL"):
        url = os.environ.get(name, "")
        if url.startswith("postgresql"):
            parts = urlsplit(url)
            database = parts.path.strip("/") or "pdm_test"
            return f"postgresql://{parts.netloc}", database
    pytest.skip("no PostgreSQL server: set PDM_TEST_DATABASE_URL or PDM_TEST_POSTGRES_URL "
                "(scripts/postgres-for-tests prints one)")


def test_restore_drill_passes_on_the_real_stack() -> None:
    endpoint = os.environ.get("PDM_TEST_S3_ENDPOINT_URL")
    if not endpoint:
        pytest.skip("PDM_TEST_S3_ENDPOINT_URL is not set: start the Object Lock test server "
                    '(`eval "$(scripts/s3-test-server start)"`) and export it')
    server, database = _postgres()
    env = {"RESTORE_DRILL_SOURCE_DB": f"{database}_drill_src",
           "RESTORE_DRILL_RESTORED_DB": f"{database}_drill_dst", **os.environ,
           "PDM_S3_ENDPOINT_URL": endpoint, "RESTORE_DRILL_POSTGRES": server,
           "RESTORE_DRILL_REPLACE_DB": "1", "RESTORE_DRILL_PYTHON": sys.executable}
    for name in ("PDM_DATABASE_URL", "PDM_S3_BUCKET", "RESTORE_DRILL_BUCKET", "RESTORE_DRILL_KEEP"):
        env.pop(name, None)
    result = subprocess.run(
        [str(ROOT / "scripts" / "restore-drill")], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=DRILL_TIMEOUT_S, check=False)
    output = result.stdout
    assert result.returncode == 0, output[-6000:] + result.stderr[-3000:]
    assert "Traceback" not in output + result.stderr
    assert "FAIL" not in output
    assert output.rstrip().endswith("RESTORE DRILL PASSED")

    # The objects written after the backup: orphans first, then quarantined, then known.
    orphans = re.search(r"^ok: (\d+) object\(s\) written after the backup reported as orphans; "
                        r"(\d+) indexed object\(s\) present and intact$", output, re.M)
    assert orphans, output
    lost, kept = int(orphans[1]), int(orphans[2])
    # case 2: its draft attachment, its design iteration, its signed request, its report
    assert lost == 4 and kept >= 4
    assert f"ok: {lost} orphan(s) quarantined" in output
    assert f"ok: second reconcile clean; the {lost} quarantined orphan(s) listed as known" in output
    assert f"ok: verify-storage: {kept} indexed object(s) present" in output
    quarantined = re.findall(r"^  ((?:draft|records)/\S+) version \S+, kept until", output, re.M)
    assert len(quarantined) == lost
    assert any(key.startswith("records/PDM-") and "/verification-" in key for key in quarantined)

    # The audit trail: the checkpoint taken after the backup is beyond the restored chain.
    audit = re.search(r"^ok: verify-audit: the restored chain \(head event (\d+) at the restore, "
                      r"\d+ now\) verifies; checkpoint (\d+) \(taken after the backup\) is "
                      r"flagged at event (\d+) \(checkpoint mismatch\)", output, re.M)
    assert audit, output
    head, lost_checkpoint, flagged = map(int, audit.groups())
    assert head < flagged <= lost_checkpoint
    assert "ok: pdm doctor passes on the restored database" in output
    assert re.search(r"^ok: the restored chain is checkpointed at event \d+$", output, re.M)
    assert re.search(rf"^BROKEN at event \d+: checkpoint mismatch: .*{lost_checkpoint:012d}"
                     r"\.json pinned event", output, re.M)
    assert re.search(r"^orphans quarantined: 4$", output, re.M)
