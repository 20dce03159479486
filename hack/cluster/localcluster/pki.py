"""The certificates and keys a throwaway control plane needs.

One self-signed CA signs the kube-apiserver serving certificate and one client certificate per
identity (admin in ``system:masters``, the controller manager, the scheduler and the node
agent as ``system:node:<name>``); an RSA key pair signs service-account tokens. The
``cryptography`` package is used when it is importable (it is in the project venv), otherwise
the ``openssl`` command-line tool.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # pragma: no cover - the openssl CLI path below takes over
    HAVE_CRYPTOGRAPHY = False
else:
    HAVE_CRYPTOGRAPHY = True

VALIDITY_DAYS = 365


@dataclass(frozen=True)
class CertSpec:
    """One leaf certificate signed by the cluster CA."""

    name: str  # file stem: <name>.crt / <name>.key
    common_name: str
    organization: str | None = None
    dns_names: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    server: bool = False


def leaf_specs(node_name: str, service_ip: str, extra_ips: tuple[str, ...] = ()) -> list[CertSpec]:
    """All leaf certificates of the local cluster."""
    return [
        CertSpec(
            "apiserver",
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=("127.0.0.1", service_ip, *extra_ips),
            server=True,
        ),
        CertSpec("admin", "kubeq-admin", "system:masters"),
        CertSpec("controller-manager", "system:kube-controller-manager"),
        CertSpec("scheduler", "system:kube-scheduler"),
        CertSpec("nodeagent", f"system:node:{node_name}", "system:nodes"),
        # The API server's identity towards aggregated API servers (request-header auth).
        CertSpec("front-proxy-client", "front-proxy-client"),
        # The real node (realnode.py): the API server towards the kubelet (logs, exec), and
        # kube-proxy (bound to system:node-proxier by the default RBAC policy).
        CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        CertSpec("kube-proxy", "system:kube-proxy"),
    ]


def generate(
    pki_dir: Path, node_name: str, service_ip: str, extra_ips: tuple[str, ...] = ()
) -> None:
    """Write ca.{crt,key}, sa.{key,pub} and every leaf pair into ``pki_dir``."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    if HAVE_CRYPTOGRAPHY:
        _generate_cryptography(pki_dir, node_name, service_ip, extra_ips)
    else:
        _generate_openssl(pki_dir, node_name, service_ip, extra_ips)
    for key in pki_dir.glob("*.key"):
        key.chmod(0o600)


def _generate_cryptography(
    pki_dir: Path, node_name: str, service_ip: str, extra_ips: tuple[str, ...]
) -> None:
    def write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=VALIDITY_DAYS)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("kubeq-localcluster-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    write_key(pki_dir / "ca.key", ca_key)
    (pki_dir / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    for spec in leaf_specs(node_name, service_ip, extra_ips):
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if spec.server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(spec.common_name, spec.organization))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in spec.ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        write_key(pki_dir / f"{spec.name}.key", key)
        (pki_dir / f"{spec.name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_key(pki_dir / "sa.key", sa_key)
    (pki_dir / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _generate_openssl(
    pki_dir: Path, node_name: str, service_ip: str, extra_ips: tuple[str, ...]
) -> None:
    days = str(VALIDITY_DAYS)
    ca_key, ca_crt = str(pki_dir / "ca.key"), str(pki_dir / "ca.crt")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", ca_key, "-sha256", "-days", days, "-out", ca_crt,
        "-subj", "/CN=kubeq-localcluster-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
    )  # fmt: skip
    for spec in leaf_specs(node_name, service_ip, extra_ips):
        key, crt = str(pki_dir / f"{spec.name}.key"), str(pki_dir / f"{spec.name}.crt")
        subj = (f"/O={spec.organization}" if spec.organization else "") + f"/CN={spec.common_name}"
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
        ext = ["basicConstraints=critical,CA:FALSE"]
        ext.append("extendedKeyUsage=" + ("serverAuth" if spec.server else "clientAuth"))
        sans = [f"DNS:{d}" for d in spec.dns_names] + [f"IP:{i}" for i in spec.ips]
        if sans:
            ext.append("subjectAltName=" + ",".join(sans))
        with tempfile.NamedTemporaryFile("w", suffix=".ext") as extfile:
            extfile.write("\n".join(ext) + "\n")
            extfile.flush()
            csr = str(pki_dir / f"{spec.name}.csr")
            _openssl("req", "-new", "-key", key, "-subj", subj, "-out", csr)
            _openssl(
                "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                "-CAcreateserial", "-sha256", "-days", days, "-out", crt,
                "-extfile", extfile.name,
            )  # fmt: skip
            Path(csr).unlink()
    _openssl("genrsa", "-traditional", "-out", str(pki_dir / "sa.key"), "2048")
    _openssl("rsa", "-in", str(pki_dir / "sa.key"), "-pubout", "-out", str(pki_dir / "sa.pub"))
