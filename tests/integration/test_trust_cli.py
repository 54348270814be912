"""`broadcast cap verify` in a subprocess, against our own signature and a real agency's."""

import subprocess
from pathlib import Path

import pytest

from broadcast.cap import signing
from tests.e2e.conftest import broadcast_exe, clean_env

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/cap"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([broadcast_exe(), *args], env=clean_env(), capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_cap_verify_exit_codes(tmp_path):
    pair = signing.create_dev_keypair(tmp_path / "keys", common_name="bpbd")
    signed = tmp_path / "signed.xml"
    signed.write_bytes(signing.sign_cap((FIXTURES / "oasis_examples/a1_homeland_security_advisory.xml").read_bytes(),
                                        pair))
    ok = run("cap", "verify", str(signed), "--cert", str(tmp_path / "keys/cert.pem"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VALID" in ok.stdout and "trusted" in ok.stdout

    modified = tmp_path / "modified.xml"
    assert b"Code ORANGE" in signed.read_bytes()
    modified.write_bytes(signed.read_bytes().replace(b"Code ORANGE", b"Code YELLOW", 1))
    bad = run("cap", "verify", str(modified), "--cert", str(tmp_path / "keys/cert.pem"), cwd=tmp_path)
    assert bad.returncode == 1 and "INVALID" in bad.stdout

    unsigned = run("cap", "verify", str(FIXTURES / "oasis_examples/a1_homeland_security_advisory.xml"), cwd=tmp_path)
    assert unsigned.returncode == 1 and "UNSIGNED" in unsigned.stdout

    real = FIXTURES / "real_world/ca_ec_snowfall_signed.cap"
    archived = run("cap", "verify", str(real), "--at-sent-time", cwd=tmp_path)
    assert archived.returncode == 0 and "Environment Canada" in archived.stdout and "SHA-1" in archived.stdout
    today = run("cap", "verify", str(real), cwd=tmp_path)
    assert today.returncode == 1  # its certificate expired in 2015
