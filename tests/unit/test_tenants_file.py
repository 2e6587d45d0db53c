"""The tenants file's validation, the quota arithmetic on a stepped clock, the shape of
credentials the auth interceptor reads, and `codebeaker tenants hash-key` as a process."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from codebeaker.runtimes.errors import QuotaExceeded, Unauthenticated
from codebeaker.server.access import is_local
from codebeaker.server.audit import AuditLog
from codebeaker.server.auth import authenticate, bearer_key
from codebeaker.server.config import parse_config
from codebeaker.server.quotas import CpuLedger, Tenancy, TokenBucket
from codebeaker.server.tenancy import Tenants, parse_tenants

A = hashlib.sha256(b"key-a").hexdigest()
B = hashlib.sha256(b"key-b").hexdigest()
COMMAND = [sys.executable, "-m", "codebeaker.server.cli", "tenants", "hash-key"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tenants(text: str) -> Tenants:
    return parse_tenants(text, "tenants.toml")


def test_a_valid_file_reads_into_typed_tenants() -> None:
    directory = tenants(
        f"""
        [tenants.grader]
        api_key_sha256 = ["{A}", "{B.upper()}"]
        subject = "CN = grader-1 , O=Acme"
        max_executions = 4
        requests_per_second = 2.5
        cpu_seconds_per_hour = 60
        max_sessions = 2
        max_queued_operations = 10

        [tenants.tutor]
        subject = "CN=tutor"
        requests_per_second = 5
        burst = 20
        """
    )
    grader = directory.by_name["grader"]
    assert grader.key_digests == {A, B}
    assert grader.subject == "CN=grader-1,O=Acme"
    assert (grader.quotas.max_executions, grader.quotas.requests_per_second) == (4, 2.5)
    assert grader.quotas.cpu_seconds_per_hour == 60.0 and grader.quotas.max_sessions == 2
    assert grader.quotas.max_queued_operations == 10 and grader.quotas.burst is None
    assert grader.burst() == 3  # one second's worth, rounded up
    assert directory.by_name["tutor"].burst() == 20
    assert directory.for_key("key-a") is grader and directory.for_key("key-c") is None
    assert directory.for_subject("CN=grader-1,O=Acme") is grader
    assert directory.for_subject("CN=grader-1") is None  # the whole subject, not a part


KEYED = f'[tenants.a]\napi_key_sha256 = ["{A}"]\n'


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (KEYED + "max_exectuions = 1", r"tenants\.a\.max_exectuions: unknown key"),
        (
            '[tenants.a]\napi_key_sha256 = ["cbk_plain-secret"]',
            r"tenants\.a\.api_key_sha256\[0\]: not a SHA-256",
        ),
        (
            KEYED + f'[tenants.b]\napi_key_sha256 = ["{B}", "{A}"]',
            r"tenants\.b\.api_key_sha256: the same key as tenant 'a'",
        ),
        (
            '[tenants.a]\nsubject = "CN=x"\n[tenants.b]\nsubject = "CN = x"',
            r"tenants\.b\.subject: the same subject as tenant 'a'",
        ),
        ("[tenants.a]\nmax_executions = 1", r"tenants\.a: no credentials"),
        (KEYED + "max_executions = 0", r"tenants\.a\.max_executions: must be more than 0"),
        (KEYED + "max_executions = 1.5", r"tenants\.a\.max_executions: must be a whole number"),
        (KEYED + "requests_per_second = true", r"\.requests_per_second: must be a number"),
        (KEYED + "cpu_seconds_per_hour = -1", r"\.cpu_seconds_per_hour: must be more than 0"),
        (KEYED + "burst = 5", r"tenants\.a\.burst: needs requests_per_second"),
        ('[tenants.a]\nsubject = "grader"', r"tenants\.a\.subject: expected ATTRIBUTE=VALUE"),
        (f'[tenants."a b"]\napi_key_sha256 = ["{A}"]', r"tenants\.a b: a tenant name is"),
        (f'[tenant.a]\napi_key_sha256 = ["{A}"]', r"unknown top-level key 'tenant'"),
        ("", r"no tenants"),
        ("[tenants.a", r"not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_tenant_and_the_field(body: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        tenants(body)


def test_the_server_refuses_to_start_on_a_bad_or_missing_tenants_file(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    with pytest.raises(ValueError, match="tenants: cannot read"):
        parse_config(["--tenants", str(path)], {})
    path.write_text('[tenants.grader]\napi_key_sha256 = ["plain"]\n')
    with pytest.raises(ValueError, match=r"tenants\.grader\.api_key_sha256\[0\]"):
        parse_config([], {"CODEBEAKER_TENANTS": str(path)})
    path.write_text(f'[tenants.grader]\napi_key_sha256 = ["{A}"]\n')
    config = parse_config(["--tenants", str(path), "--audit-log", str(tmp_path / "a")], {})
    assert config.access.tenants == str(path) and config.access.audit_log == str(tmp_path / "a")


def test_a_token_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, size=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0  # idle time refills up to the size, no more
    assert [bucket.take(100.0) for _ in range(3)][-1] == pytest.approx(0.5)


def test_the_cpu_ledger_forgets_charges_after_an_hour_in_minute_steps() -> None:
    ledger = CpuLedger()
    ledger.charge(10.0, 5.0)  # minute 0
    ledger.charge(70.0, 3.0)  # minute 1
    assert ledger.used(70.0) == 8.0
    # Minute 0 counts until 60 + 3600; then minute 1's 3 s remain until 120 + 3600.
    assert ledger.retry_after(100.0, limit=6.0) == pytest.approx(3660.0 - 100.0)
    assert ledger.retry_after(100.0, limit=2.0) == pytest.approx(3720.0 - 100.0)
    assert ledger.used(3659.0) == 8.0
    assert ledger.used(3660.0) == 3.0
    assert ledger.used(3720.0) == 0.0


def test_tenancy_refuses_over_each_quota_and_tells_the_metrics() -> None:
    clock = Clock()
    rejected: list[tuple[str, str]] = []
    directory = tenants(
        f"""
        [tenants.a]
        api_key_sha256 = ["{A}"]
        max_executions = 1
        cpu_seconds_per_hour = 10
        requests_per_second = 1
        """
    )
    tenancy = Tenancy(directory, clock, lambda *names: rejected.append(names))
    a = directory.by_name["a"]
    tenancy.admit_request(a)
    with pytest.raises(QuotaExceeded, match="request rate") as over_rate:
        tenancy.admit_request(a)
    assert (over_rate.value.quota, over_rate.value.retry_after) == ("requests_per_second", 1.0)
    clock.now += 1.0
    tenancy.admit_request(a)
    with tenancy.admit_execution(a) as lease:
        with pytest.raises(QuotaExceeded, match="max_executions"):
            tenancy.admit_execution(a)
        lease.charge(12.0)
    assert tenancy.usage(a).executing == 0 and tenancy.usage(a).cpu_seconds_last_hour == 12.0
    with pytest.raises(QuotaExceeded, match="CPU seconds") as over_cpu:
        tenancy.admit_execution(a)
    assert over_cpu.value.tenant == "a" and 3600 <= over_cpu.value.retry_after <= 3660
    clock.now += over_cpu.value.retry_after
    tenancy.admit_execution(a).release()
    quotas = ["requests_per_second", "max_executions", "cpu_seconds_per_hour"]
    assert rejected == [("a", quota) for quota in quotas]


def test_sessions_and_queued_operations_have_their_checks_ready() -> None:
    directory = tenants(
        f'[tenants.a]\napi_key_sha256 = ["{A}"]\nmax_sessions = 2\nmax_queued_operations = 1\n'
        f'[tenants.b]\napi_key_sha256 = ["{B}"]\n'
    )
    tenancy = Tenancy(directory, Clock())
    a, b = directory.by_name["a"], directory.by_name["b"]
    tenancy.check_sessions(a, 1)
    with pytest.raises(QuotaExceeded, match="max_sessions") as refused:
        tenancy.check_sessions(a, 2)
    assert refused.value.quota == "max_sessions"
    queued = tenancy.admit_operation(a)
    with pytest.raises(QuotaExceeded, match="max_queued_operations"):
        tenancy.admit_operation(a)
    queued.release()
    tenancy.admit_operation(a)
    assert tenancy.usage(a).queued_operations == 1
    tenancy.check_sessions(b, 10_000)  # no quotas: no limit
    for _ in range(10):
        tenancy.admit_operation(b)


def test_credentials_are_read_from_metadata_and_the_auth_context() -> None:
    directory = tenants(
        f'[tenants.a]\napi_key_sha256 = ["{A}"]\n'
        f'[tenants.b]\napi_key_sha256 = ["{B}"]\nsubject = "CN=b-1,O=Example"\n'
    )
    # grpc's auth context of a verified mTLS peer: property names to lists of bytes.
    mtls = {
        "transport_security_type": [b"ssl"],
        "x509_common_name": [b"b-1"],
        "x509_subject": [b"CN=b-1,O=Example"],
    }
    assert bearer_key([("Authorization", "bearer  key-a ")]) == "key-a"
    assert bearer_key([("x-other", "1")]) is None
    assert authenticate(directory, [("authorization", "Bearer key-a")], {}).name == "a"
    assert authenticate(directory, [("authorization", b"Bearer key-b")], mtls).name == "b"
    assert authenticate(directory, [], mtls).name == "b"
    with pytest.raises(Unauthenticated, match="different tenants"):
        authenticate(directory, [("authorization", "Bearer key-a")], mtls)
    with pytest.raises(Unauthenticated, match="subject 'CN=other'"):
        authenticate(directory, [], {"x509_subject": [b"CN=other"]})
    with pytest.raises(Unauthenticated, match="more than one"):
        authenticate(directory, [("authorization", "Bearer key-a")] * 2, {})
    with pytest.raises(Unauthenticated, match="no credentials"):
        authenticate(directory, [], {"transport_security_type": [b"insecure"]})


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1:50051", True),
        ("127.8.0.1:1", True),
        ("[::1]:50051", True),
        ("localhost:50051", True),
        ("unix:/run/codebeaker.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.0.0.7:50051", False),
        ("codebeaker.internal:50051", False),
    ],
)
def test_only_loopback_and_unix_sockets_count_as_local(address: str, local: bool) -> None:
    assert is_local(address) is local


def test_hash_key_prints_the_line_for_a_key_from_stdin_or_a_generated_one() -> None:
    given = subprocess.run(
        COMMAND, input="cbk_my secret key\n", capture_output=True, text=True, timeout=60
    )
    assert given.returncode == 0, given.stderr
    digest = hashlib.sha256(b"cbk_my secret key").hexdigest()
    assert given.stdout == f'api_key_sha256 = ["{digest}"]\n'
    made = subprocess.run([*COMMAND, "--generate"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key_line, digest_line = made.stdout.splitlines()
    key = key_line.removeprefix("key: ")
    assert key.startswith("cbk_") and len(key) > 40
    # The printed line is the file's syntax, and the printed key is its tenant's.
    directory = tenants(f"[tenants.new]\n{digest_line}\n")
    assert directory.for_key(key) is directory.by_name["new"]
    other = subprocess.run([*COMMAND, "--generate"], capture_output=True, text=True, timeout=60)
    assert other.stdout.splitlines()[0] != key_line
    empty = subprocess.run(COMMAND, input="\n", capture_output=True, text=True, timeout=60)
    assert empty.returncode == 2 and "no key" in empty.stderr and empty.stdout == ""


def test_serve_stops_at_once_on_a_bad_tenants_file_naming_the_tenant(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text('[tenants.grader]\napi_key_sha256 = ["cbk_plain-secret"]\n')
    serve = [sys.executable, "-m", "codebeaker.server.cli", "serve", "--address", "127.0.0.1:0"]
    done = subprocess.run(
        [*serve, "--tenants", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "tenants.grader.api_key_sha256[0]: not a SHA-256" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_audit_writer_outlives_a_full_disk(caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog(Path("/dev/full"))  # every write fails with ENOSPC
    for number in range(3):
        audit.write({"call": number})
    await asyncio.to_thread(audit.flush)  # returns: the writer is still taking lines
    audit.write({"call": 3})
    await audit.close()
    (error,) = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert error.levelno == logging.ERROR and "/dev/full" in error.getMessage()
