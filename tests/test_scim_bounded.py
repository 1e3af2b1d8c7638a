"""Bounded I/O in the SCIM client, against real hostile servers on loopback: a total deadline per request, a
response size cap, paged reads that must end, server text scrubbed before it is cut, and TLS with a caBundle."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.cli import main
from reconciler.errors import TargetError
from reconciler.manifest import load_manifest
from reconciler.run import target_client
from reconciler.scim.client import ScimClient, target_ssl_context
from reconciler.scim.errors import (
    OutcomeUnknown,
    ResponseTooLarge,
    TargetResponseError,
    TargetStatusError,
    TargetUnreachable,
)
from reconciler.scim.retry import RetryPolicy
from tests.hostile import HostileServer, Reply, Request, scim_list, serving
from tests.reconcile_helpers import ROOT, TOKEN, directory
from tests.scim_helpers import SleepRecorder, run, user

TWO_TRIES = RetryPolicy(max_attempts=2, max_total_wait=5.0, base_delay=0.01, max_delay=0.01)
ATEA = ROOT / "manifests" / "atea.yaml"


def client(url: str, token: str | None = TOKEN, **options: Any) -> ScimClient:
    options.setdefault("retry", TWO_TRIES)
    options.setdefault("sleep", SleepRecorder())
    options.setdefault("timeout", 10.0)
    return ScimClient(url, token, **options)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


# -- hostile apps -----------------------------------------------------------------------------------------------

def start_reply(request: Request, status: int, headers: dict[str, str]) -> None:
    handler = request.handler
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.flush()


def trickle(request: Request) -> None:
    """A 200 that promises 10 kB and sends one byte every 0.2 s (each read is quick, the answer never ends)."""
    start_reply(request, 200, {"Content-Type": "application/scim+json", "Content-Length": "10000"})
    try:
        for _ in range(200):
            request.handler.wfile.write(b" ")
            request.handler.wfile.flush()
            time.sleep(0.2)
    except OSError:  # the client gave up
        pass


def huge_declared(request: Request) -> None:
    """A 200 announcing 200 MB; it sends a little and then closes."""
    start_reply(request, 200, {"Content-Type": "application/scim+json", "Content-Length": str(200 * 1024 * 1024)})
    with suppress(OSError):
        request.handler.wfile.write(b"{" * 1024)


def endless_chunks(request: Request) -> None:
    """A chunked 200 without a length, 64 KiB chunks until the client hangs up (at most 128 MiB)."""
    start_reply(request, 200, {"Content-Type": "application/scim+json", "Transfer-Encoding": "chunked"})
    chunk = b"[" * 65536
    try:
        for _ in range(2048):
            request.handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass


def fresh_pages(*, with_total: bool) -> Any:
    """List requests get a full page of ids never seen before, forever; totalResults always promises more."""

    def app(request: Request) -> Reply:
        if request.route not in ("/v2/Users", "/v2/Groups"):
            return Reply(404, {"detail": "no discovery here"})
        start, count = int(request.query.get("startIndex", "1")), int(request.query.get("count", "100"))
        page = [{"id": f"u{n}", "userName": f"u{n}@example.com", "displayName": f"g{n}"}
                for n in range(start, start + count)]
        body = scim_list(page, total=start + count + 5, start=start)
        if not with_total:
            del body["totalResults"]
        return Reply(200, body)

    return app


def total_without_resources(resources: list[Any] | None) -> Any:
    def app(request: Request) -> Reply:
        if request.route not in ("/v2/Users", "/v2/Groups"):
            return Reply(404, {"detail": "no discovery here"})
        body = scim_list([], total=3)
        if resources is None:
            del body["Resources"]
        return Reply(200, body)

    return app


def empty_target(request: Request) -> Reply:
    if request.route in ("/v2/Users", "/v2/Groups"):
        return Reply(200, scim_list([]))
    return Reply(404, {"detail": "no discovery here"})


# -- a total deadline per request ----------------------------------------------------------------------------

def test_a_trickling_read_is_cut_by_the_total_deadline_once() -> None:
    sleep = SleepRecorder()

    async def go(url: str) -> None:
        async with client(url, request_timeout=1.0, sleep=sleep) as scim:
            with pytest.raises(TargetUnreachable) as caught:
                await scim.get("User", "u1")
            assert one_line(caught.value) == ("GET /Users/u1: no complete answer within 1 s "
                                              "(RECONCILER_REQUEST_TIMEOUT)")

    with serving(trickle) as server:
        run(go(f"{server.url}/v2"))
        assert [r.method for r in server.requests] == ["GET"]  # one deadline, not one per attempt
    assert sleep.waits == []


def test_a_trickling_write_is_an_unknown_outcome_never_resent() -> None:
    async def go(url: str) -> None:
        async with client(url, request_timeout=1.0) as scim:
            with pytest.raises(OutcomeUnknown) as caught:
                await scim.create("User", user("slow@example.com"))
            assert "POST /Users: the answer was lost (no complete answer within 1 s" in one_line(caught.value)

    with serving(trickle) as server:
        run(go(f"{server.url}/v2"))
        assert [r.method for r in server.requests] == ["POST"]


# -- a response size cap ----------------------------------------------------------------------------------------

def test_a_declared_200_mb_answer_is_refused_before_reading() -> None:
    async def go(url: str) -> None:
        async with client(url) as scim:
            with pytest.raises(ResponseTooLarge) as caught:
                await scim.get("User", "u1")
            assert one_line(caught.value) == (
                "GET /Users/u1: the answer's Content-Length (209715200 bytes) is above the response size limit "
                "of 64 MiB (RECONCILER_MAX_RESPONSE_BYTES)")

    with serving(huge_declared) as server:
        run(go(f"{server.url}/v2"))
        assert len(server.requests) == 1  # not retried


def test_an_endless_chunked_answer_stops_at_the_cap() -> None:
    async def go(url: str) -> None:
        async with client(url, max_response_bytes=1024 * 1024) as scim:
            with pytest.raises(ResponseTooLarge) as caught:
                await scim.list_all("User")
            assert one_line(caught.value).startswith("GET /Users?startIndex=1&count=1000: the answer is larger "
                                                     "than the response size limit of 1 MiB")

    with serving(endless_chunks) as server:
        run(go(f"{server.url}/v2"))


def test_an_oversized_discovery_answer_is_not_taken_for_missing_discovery() -> None:
    async def go(url: str) -> None:
        async with client(url, max_response_bytes=4096) as scim:
            with pytest.raises(ResponseTooLarge, match=r"GET /ServiceProviderConfig: .* limit of 4096 bytes"):
                await scim.discover()

    with serving(endless_chunks) as server:
        run(go(f"{server.url}/v2"))


def test_a_large_error_answer_keeps_its_status() -> None:
    def app(request: Request) -> Reply:
        return Reply(404, "not here " + "x" * 200_000, content_type="text/plain")

    async def go(url: str) -> None:
        async with client(url, max_response_bytes=1024) as scim:
            with pytest.raises(TargetStatusError) as caught:
                await scim.get("User", "gone")
            assert caught.value.status == 404 and caught.value.detail is not None
            assert caught.value.detail.startswith("not here xxx")
            assert len(one_line(caught.value)) < 300

    with serving(app) as server:
        run(go(f"{server.url}/v2"))


# -- paged reads that end ---------------------------------------------------------------------------------------

def test_endless_fresh_pages_beyond_total_results_are_an_error() -> None:
    async def go(url: str) -> None:
        async with client(url, page_size=10) as scim:
            with pytest.raises(TargetResponseError) as caught:
                await scim.list_all("User")
            assert one_line(caught.value) == ("GET /Users: paging does not end: 30 distinct resources listed, more "
                                              "than the first page's totalResults allows (26, with slack)")

    with serving(fresh_pages(with_total=True)) as server:
        run(go(f"{server.url}/v2"))
        assert len(server.requests) == 3


def test_endless_fresh_pages_without_total_results_stop_at_the_object_cap() -> None:
    async def go(url: str) -> None:
        async with client(url, page_size=10, max_objects=50) as scim:
            with pytest.raises(TargetResponseError) as caught:
                await scim.list_all("User")
            assert one_line(caught.value) == ("GET /Users: paging does not end: more than 50 resources listed, the "
                                              "limit of objects per read (RECONCILER_MAX_OBJECTS)")

    with serving(fresh_pages(with_total=False)) as server:
        run(go(f"{server.url}/v2"))
        assert len(server.requests) == 6


def test_a_total_above_the_object_cap_is_refused_on_the_first_page() -> None:
    async def go(url: str) -> None:
        async with client(url, page_size=10, max_objects=5) as scim:
            with pytest.raises(TargetResponseError, match="reports 16 resources, above the limit of 5 objects"):
                await scim.list_all("User")

    with serving(fresh_pages(with_total=True)) as server:
        run(go(f"{server.url}/v2"))
        assert len(server.requests) == 1


@pytest.mark.parametrize("resources", [None, []], ids=["absent", "empty"])
def test_total_results_without_resources_is_an_error_not_an_empty_target(resources: list[Any] | None) -> None:
    async def go(url: str) -> None:
        async with client(url) as scim:
            with pytest.raises(TargetResponseError) as caught:
                await scim.list_all("User")
            assert one_line(caught.value) == ("GET /Users: the first page reports totalResults 3 but lists no "
                                              "Resources")

    with serving(total_without_resources(resources)) as server:
        run(go(f"{server.url}/v2"))


def test_an_empty_target_is_still_empty() -> None:
    async def go(url: str) -> None:
        async with client(url) as scim:
            assert await scim.list_all("User") == []

    with serving(empty_target) as server:
        run(go(f"{server.url}/v2"))


# -- server text: scrubbed, then cut ----------------------------------------------------------------------------

def canary() -> str:
    """A token whose every 4-character piece is foreign to the rest of an error message."""
    return "canary" + "".join(secrets.choice("JKLMNQRSVWZ") for _ in range(24))


def fragments(token: str, size: int = 4) -> list[str]:
    return [token[i:i + size] for i in range(len(token) - size + 1)]


@pytest.mark.parametrize("before", [180, 190, 196], ids=lambda n: f"token-at-{n}")
def test_a_text_error_body_is_scrubbed_before_it_is_cut(before: int) -> None:
    token = canary()

    def app(request: Request) -> Reply:
        return Reply(400, "x" * before + token + " and more text", content_type="text/plain")

    async def go(url: str) -> None:
        async with client(url, token) as scim:
            with pytest.raises(TargetStatusError) as caught:
                await scim.get("User", "u1")
            message = one_line(caught.value)
            assert "HTTP 400" in message
            assert not [piece for piece in fragments(token) if piece in message], message

    with serving(app) as server:
        run(go(f"{server.url}/v2"))


def test_a_long_json_detail_and_scim_type_are_scrubbed_before_they_are_cut() -> None:
    token = canary()

    def app(request: Request) -> Reply:
        return Reply(409, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409",
                           "scimType": "y" * 195 + token, "detail": "d" * 995 + token})

    async def go(url: str) -> None:
        async with client(url, token) as scim:
            with pytest.raises(TargetStatusError) as caught:
                await scim.create("User", user("a@example.com"))
            message = one_line(caught.value)
            assert "HTTP 409" in message and len(message) < 1400
            assert not [piece for piece in fragments(token) if piece in message], message

    with serving(app) as server:
        run(go(f"{server.url}/v2"))


# -- TLS: the default trust plus a caBundle ---------------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA (ca.pem) and a server certificate for 127.0.0.1 and localhost signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("Test Private CA")).issuer_name(_name("Test Private CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return ca_pem, cert_pem, key_pem


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_pki(tmp_path)


@contextmanager
def serving_tls(app: Any, cert: Path, key: Path) -> Iterator[tuple[HostileServer, str]]:
    """``app`` behind TLS on loopback; yields the server and its https base URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HostileServer(app)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server, f"https://127.0.0.1:{server.server_address[1]}/v2"
    finally:
        server.shutdown()
        server.server_close()


def test_the_ssl_context_is_the_default_trust_plus_the_bundle(pki: tuple[Path, Path, Path]) -> None:
    context = target_ssl_context(pki[0])
    subjects = [dict(item[0] for item in ca["subject"]).get("commonName") for ca in context.get_ca_certs()]
    assert "Test Private CA" in subjects
    default = httpx.create_ssl_context().get_ca_certs()  # certifi, or SSL_CERT_FILE when it is set
    assert len(default) > 0 and all(ca in context.get_ca_certs() for ca in default)
    assert len(subjects) == len(default) + 1


def test_without_the_bundle_tls_verification_fails_in_one_line(pki: tuple[Path, Path, Path]) -> None:
    _, cert, key = pki

    async def go(url: str) -> None:
        async with client(url) as scim:
            with pytest.raises(TargetUnreachable) as caught:
                await scim.list_all("User")
            message = one_line(caught.value)
            assert message.startswith("GET /Users?startIndex=1&count=1000: TLS certificate verification failed: ")
            assert "provisioning.target.caBundle" in message

    with serving_tls(empty_target, cert, key) as (server, url):
        run(go(url))
        assert server.requests == []


def test_with_the_bundle_the_private_target_answers(pki: tuple[Path, Path, Path]) -> None:
    ca, cert, key = pki

    async def go(url: str) -> None:
        async with client(url, ssl_context=target_ssl_context(ca)) as scim:
            assert await scim.list_all("User") == []

    with serving_tls(empty_target, cert, key) as (server, url):
        run(go(url))
        assert [r.route for r in server.requests] == ["/v2/Users"]


# -- through the command line: one line, exit 1 -----------------------------------------------------------------

def cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def manifest_copy(folder: Path, ca_bundle: str | None = None) -> Path:
    snapshot = "  directory:\n    snapshot: ../examples/directory.json\n"
    text = ATEA.read_text()
    assert snapshot in text
    text = text.replace(snapshot, "")  # the copy reads the directory given with --directory
    if ca_bundle is not None:
        anchor = "    tokenEnv: ATEA_SCIM_TOKEN"
        assert anchor in text
        text = text.replace(anchor, f"    caBundle: {ca_bundle}\n{anchor}", 1)
    path = folder / "manifests" / "atea.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


HOSTILE = {
    "trickle": (trickle, {"RECONCILER_REQUEST_TIMEOUT": "1"}, "no complete answer within 1 s"),
    "declared-200MB": (huge_declared, {}, "is above the response size limit of 64 MiB"),
    "chunked-endless": (endless_chunks, {"RECONCILER_MAX_RESPONSE_BYTES": "100000"},
                        "larger than the response size limit of 100000 bytes"),
    "fresh-pages": (fresh_pages(with_total=True), {}, "paging does not end"),
    "fresh-pages-no-total": (fresh_pages(with_total=False), {"RECONCILER_MAX_OBJECTS": "2500"},
                             "more than 2500 resources listed"),
    "total-without-resources": (total_without_resources(None), {}, "reports totalResults 3 but lists no Resources"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_targets_through_plan_are_one_line_and_exit_1(case: str, tmp_path: Path, capsys: Any,
                                                               monkeypatch: Any) -> None:
    app, environment, expected = HOSTILE[case]
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with serving(app) as server:
        code, out, err = cli(capsys, "plan", str(ATEA), "--directory", directory(tmp_path), "--target",
                             f"{server.url}/v2")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err, err
    assert err.startswith(f"atea ({server.url}/v2): GET /"), err


def test_a_bad_limit_setting_is_one_line(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    monkeypatch.setenv("RECONCILER_REQUEST_TIMEOUT", "soon")
    with serving(empty_target) as server:
        code, _, err = cli(capsys, "plan", str(ATEA), "--directory", directory(tmp_path), "--target",
                           f"{server.url}/v2")
        assert server.requests == []
    assert code == 1 and err == "RECONCILER_REQUEST_TIMEOUT='soon': expected a positive number\n"


def test_plan_over_tls_fails_without_the_bundle_and_succeeds_with_it(pki: tuple[Path, Path, Path], tmp_path: Path,
                                                                     capsys: Any, monkeypatch: Any) -> None:
    ca, cert, key = pki
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    snapshot = directory(tmp_path)
    with serving_tls(empty_target, cert, key) as (server, url):
        plain = manifest_copy(tmp_path)
        code, _, err = cli(capsys, "plan", str(plain), "--directory", snapshot, "--target", url)
        assert code == 1 and err.count("\n") == 1 and "TLS certificate verification failed" in err, err
        assert server.requests == []

        (tmp_path / "manifests" / "certs").mkdir()
        (tmp_path / "manifests" / "certs" / "ca.pem").write_bytes(ca.read_bytes())
        trusting = manifest_copy(tmp_path, ca_bundle="certs/ca.pem")
        code, out, err = cli(capsys, "plan", str(trusting), "--directory", snapshot, "--target", url)
        assert code == 0, err
        assert "10 to create" in out


BAD_BUNDLES = {"missing": (None, "No such file or directory"),
               "not-pem": (b"not a certificate\n", "not a PEM file of CA certificates")}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_a_bad_ca_bundle_stops_plan_in_one_positioned_line(case: str, tmp_path: Path, capsys: Any,
                                                          monkeypatch: Any) -> None:
    content, reason = BAD_BUNDLES[case]
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    manifest = manifest_copy(tmp_path, ca_bundle="ca.pem")
    if content is not None:
        (manifest.parent / "ca.pem").write_bytes(content)
    with serving(empty_target) as server:
        code, _, err = cli(capsys, "plan", str(manifest), "--directory", directory(tmp_path), "--target",
                           f"{server.url}/v2")
        assert server.requests == []
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"{manifest}:21:15: provisioning.target.caBundle: "), err
    assert "'ca.pem'" in err and reason.split()[0] in err


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_a_bad_ca_bundle_is_refused_when_the_client_is_built(case: str, tmp_path: Path, monkeypatch: Any) -> None:
    content, reason = BAD_BUNDLES[case]
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    manifest = manifest_copy(tmp_path, ca_bundle="ca.pem")
    if content is not None:
        (manifest.parent / "ca.pem").write_bytes(content)
    with pytest.raises(TargetError) as caught:
        target_client(load_manifest(manifest), "https://scim.example/v2", max_connections=4)
    assert one_line(caught.value).startswith(
        f"{manifest}: provisioning.target.caBundle: CA bundle '{manifest.parent / 'ca.pem'}': {reason}")


def test_validate_reports_a_missing_ca_bundle_at_its_position(tmp_path: Path, capsys: Any) -> None:
    manifest = manifest_copy(tmp_path, ca_bundle="certs/missing.pem")
    line = next(n for n, text in enumerate(manifest.read_text().splitlines(), 1) if "caBundle:" in text)
    code, _, err = cli(capsys, "validate", str(manifest))
    assert code == 1
    assert f"{manifest}:{line}:15: provisioning.target.caBundle: cannot read 'certs/missing.pem'" in err, err

    (manifest.parent / "certs").mkdir()
    (manifest.parent / "certs" / "missing.pem").write_bytes(make_pki(tmp_path)[0].read_bytes())
    code, _, err = cli(capsys, "validate", str(manifest))
    assert code == 0, err
