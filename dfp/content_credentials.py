"""C2PA Content Credentials on what the platform generates, written and read with c2pa-python (the
Content Authenticity Initiative's bindings to its Rust c2pa library).

The manifest says, signed, that the file was created by a trained algorithm (IPTC digital source type
`trainedAlgorithmicMedia`), which generator and operation made it, and under which platform. Signing
needs an X.509 certificate chain and its private key (ES256, P-256): DFP_C2PA_CERT and DFP_C2PA_KEY
name the PEM files; `dfp admin c2pa-identity` makes a private CA and a signer for deployments that
have no certificate from a C2PA-trusted authority. A reader trusts the chain when its root is in
DFP_C2PA_TRUST_ANCHORS (a PEM file); otherwise the manifest still reads and its signature still
checks, but it is reported as untrusted.

Formats: PNG, JPEG, WebP and MP4, the formats the platform writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MIME_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
              ".mp4": "video/mp4"}
PLATFORM_ASSERTION = "org.dfp.generation"


class CredentialsError(RuntimeError):
    """A manifest could not be written (bad signing identity, unsupported file)."""


@dataclasses.dataclass(frozen=True)
class SigningIdentity:
    certificate_chain: bytes  # PEM, signer first, then its issuers
    private_key: bytes  # PEM

    @classmethod
    def from_files(cls, certificate_chain: str, private_key: str) -> "SigningIdentity | None":
        """The identity in these PEM files (DFP_C2PA_CERT, DFP_C2PA_KEY); None when both are unset."""
        if not certificate_chain and not private_key:
            return None
        if not (certificate_chain and private_key):
            raise CredentialsError("set both DFP_C2PA_CERT and DFP_C2PA_KEY (PEM files), or neither")
        return cls(pathlib.Path(certificate_chain).read_bytes(), pathlib.Path(private_key).read_bytes())


def create_identity(folder: pathlib.Path, organisation: str = "dfp", days: int = 730) -> dict[str, pathlib.Path]:
    """A private CA and an ES256 signer it issued, as PEM files in `folder`: ca.pem (the trust
    anchor), signer-chain.pem (signer then CA) and signer-key.pem (owner-readable only)."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from dfp import pki

    ca = pki.new_ca(f"{organisation} content credentials CA", organisation, days)
    # C2PA wants a leaf that signs documents: digitalSignature, an email-protection extended usage, not a CA.
    signer = pki.issue(ca, f"{organisation} generated-media signer", organisation, days,
                       [ExtendedKeyUsageOID.EMAIL_PROTECTION])
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"trust_anchor": folder / "ca.pem", "certificate_chain": folder / "signer-chain.pem",
             "private_key": folder / "signer-key.pem"}
    paths["trust_anchor"].write_bytes(ca.certificate_pem())
    paths["certificate_chain"].write_bytes(signer.certificate_pem() + ca.certificate_pem())
    pki.write_private(paths["private_key"], signer.key_pem())
    return paths


def mime_type(path: pathlib.Path) -> str:
    try:
        return MIME_TYPES[path.suffix.lower()]
    except KeyError:
        raise CredentialsError(f"{path.name}: content credentials are written to {', '.join(MIME_TYPES)} files") from None


def manifest_definition(title: str, generator: str, operation: str) -> dict:
    from importlib import metadata

    try:
        version = metadata.version("dfp")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "claim_generator_info": [{"name": "dfp", "version": version}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE,
                "softwareAgent": {"name": f"dfp {generator}"}}]}},
            {"label": PLATFORM_ASSERTION, "data": {"synthetic": True, "generator": generator, "operation": operation}},
        ],
    }


def embed(source: pathlib.Path, dest: pathlib.Path, identity: SigningIdentity, generator: str, operation: str = "",
          title: str | None = None) -> None:
    """Writes `source` with a signed manifest to `dest` (a different path)."""
    import c2pa

    mime = mime_type(source)
    definition = manifest_definition(title or source.name, generator, operation)
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, identity.certificate_chain,
                                                           identity.private_key, None))
        with signer, c2pa.Builder(json.dumps(definition)) as builder, open(source, "rb") as src, open(dest, "wb") as out:
            builder.sign(signer, mime, src, out)
    except c2pa.C2paError as exc:
        raise CredentialsError(f"could not sign {source.name}: {exc}") from None


def read(path: pathlib.Path, trust_anchors: bytes | None = None) -> dict:
    """The active manifest's claims about the file and whether its signature and bindings hold.

    `present` is False for a file without a manifest. `valid` is the library's verdict on the
    signature and the hashes that bind the manifest to these exact bytes (an edited file fails);
    `trusted` says whether the signer chains to `trust_anchors` (default: DFP_C2PA_TRUST_ANCHORS)."""
    import c2pa

    if trust_anchors is None and os.environ.get("DFP_C2PA_TRUST_ANCHORS"):
        trust_anchors = pathlib.Path(os.environ["DFP_C2PA_TRUST_ANCHORS"]).read_bytes()
    context = None
    if trust_anchors:
        context = c2pa.Context(settings=c2pa.Settings.from_dict(
            {"verify": {"verify_trust": True}, "trust": {"trust_anchors": trust_anchors.decode()}}))
    try:
        with open(path, "rb") as f:
            reader = c2pa.Reader(mime_type(path), f, context=context) if context else c2pa.Reader(mime_type(path), f)
            with reader:
                store = json.loads(reader.json())
    except CredentialsError:
        return {"present": False, "reason": "format without content credentials support"}
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return {"present": False}
        return {"present": True, "valid": False, "errors": [str(exc)]}
    manifest = store["manifests"][store["active_manifest"]]
    statuses = store.get("validation_status") or []
    codes = [s.get("code", "") for s in statuses]
    actions = [a for assertion in manifest.get("assertions", []) if assertion["label"].startswith("c2pa.actions")
               for a in assertion["data"].get("actions", [])]
    platform = next((a["data"] for a in manifest.get("assertions", []) if a["label"] == PLATFORM_ASSERTION), {})
    failures = [code for code in codes if code != "signingCredential.untrusted"]
    return {
        "present": True,
        "valid": store.get("validation_state") in ("Valid", "Trusted") and not failures,
        "trusted": store.get("validation_state") == "Trusted",
        "validation_state": store.get("validation_state"),
        "errors": failures,
        "generated_by_ai": any(a.get("digitalSourceType") == DIGITAL_SOURCE_TYPE for a in actions),
        "generator": platform.get("generator"),
        "operation": platform.get("operation"),
        "signer": (manifest.get("signature_info") or {}).get("issuer"),
    }
