"""A private certificate authority, for the platform's own certificates: the C2PA signer
(`dfp.content_credentials`) and the services' mutual TLS (`dfp admin mtls`). ECDSA P-256 throughout."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import os
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

USAGE_FLAGS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
               "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")


@dataclasses.dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])


def _usage(**granted) -> x509.KeyUsage:
    return x509.KeyUsage(**{**dict.fromkeys(USAGE_FLAGS, False), **granted})


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))


def new_ca(common_name: str, organisation: str, days: int) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, organisation)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    return Issued(_validity(builder, days).sign(key, hashes.SHA256()), key)


def issue(ca: Issued, common_name: str, organisation: str, days: int, usages: list, names: list[str] = ()) -> Issued:
    """A leaf certificate signed by `ca`, for the extended `usages`, valid for the DNS names or IP
    addresses in `names`."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(common_name, organisation)).issuer_name(ca.certificate.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_usage(digital_signature=True), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False))
    if names:
        alternatives = []
        for name in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
    return Issued(_validity(builder, days).sign(ca.key, hashes.SHA256()), key)


def write_private(path: pathlib.Path, data: bytes) -> None:
    """Writes a private key readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(data)


def create_mtls(folder: pathlib.Path, names: list[str], organisation: str = "dfp", days: int = 365) -> dict[str, pathlib.Path]:
    """A CA and one certificate for the services, good as server (for every name in `names`) and as
    client: ca.crt, tls.crt, tls.key in `folder` (the layout of a kubernetes.io/tls Secret with its CA)."""
    ca = new_ca(f"{organisation} services CA", organisation, days)
    leaf = issue(ca, f"{organisation} service", organisation, days,
                 [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], names)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"ca": folder / "ca.crt", "certificate": folder / "tls.crt", "key": folder / "tls.key"}
    paths["ca"].write_bytes(ca.certificate_pem())
    paths["certificate"].write_bytes(leaf.certificate_pem())
    write_private(paths["key"], leaf.key_pem())
    return paths


def write_tf_serving_ssl_config(folder: str | os.PathLike, out: str | os.PathLike) -> None:
    """TensorFlow Serving's SSLConfig (text format; it takes the PEMs inline, not as paths) for mutual
    TLS from a folder holding ca.crt, tls.crt and tls.key: only clients the CA signed get in."""
    folder = pathlib.Path(folder)
    # JSON string escapes (\n, \") are valid protobuf text-format string escapes for PEM text.
    fields = {"server_key": "tls.key", "server_cert": "tls.crt", "custom_ca": "ca.crt"}
    lines = [f"{field}: {json.dumps((folder / name).read_text())}" for field, name in fields.items()]
    pathlib.Path(out).write_text("\n".join([*lines, "client_verify: true"]) + "\n")
