"""C2PA Content Credentials: a signed manifest that says the media is AI-generated, bound to the file's
bytes, checked against the platform's trust anchor."""

import numpy as np
import pytest
from PIL import Image

from dfp import content_credentials, media, provenance


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    paths = content_credentials.create_identity(tmp_path_factory.mktemp("c2pa"), "test org")
    signing = content_credentials.SigningIdentity.from_files(str(paths["certificate_chain"]), str(paths["private_key"]))
    return signing, paths["trust_anchor"].read_bytes(), paths


def test_the_private_key_is_readable_by_its_owner_only(identity):
    assert identity[2]["private_key"].stat().st_mode & 0o077 == 0


def test_a_signed_png_reads_back_as_ai_generated_by_its_generator_and_trusted_with_the_anchor(identity, tmp_path):
    signing, anchor, _ = identity
    provenance.save_labelled_png(np.full((64, 80, 3), 90, np.uint8), tmp_path / "a.png",
                                 provenance.synthetic_metadata("fomm", "operations/abc"))
    content_credentials.embed(tmp_path / "a.png", tmp_path / "signed.png", signing, "fomm", "operations/abc")
    trusted = content_credentials.read(tmp_path / "signed.png", anchor)
    assert trusted["present"] and trusted["valid"] and trusted["trusted"] and trusted["generated_by_ai"]
    assert (trusted["generator"], trusted["operation"]) == ("fomm", "operations/abc")
    # Without the anchor the signature still checks, but nothing vouches for the signer.
    alone = content_credentials.read(tmp_path / "signed.png", b"")
    assert alone["valid"] and not alone["trusted"]
    # The PNG's own labels and pixels are untouched.
    assert Image.open(tmp_path / "signed.png").info["dfp_generator"] == "fomm"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "signed.png")), np.asarray(Image.open(tmp_path / "a.png")))


def test_an_edited_video_fails_its_manifest_check(identity, tmp_path):
    signing, anchor, _ = identity
    writer = media.VideoWriter(tmp_path / "v.mp4", 10)
    for value in range(0, 250, 50):
        writer.write(np.full((64, 64, 3), value, np.uint8))
    writer.close()
    content_credentials.embed(tmp_path / "v.mp4", tmp_path / "signed.mp4", signing, "faceswap:ab:v2")
    assert content_credentials.read(tmp_path / "signed.mp4", anchor)["trusted"]
    assert len(list(media.iter_video_frames(tmp_path / "signed.mp4"))) == 5
    edited = bytearray((tmp_path / "signed.mp4").read_bytes())
    edited[-64] ^= 0xFF  # a byte of the last frame's data
    (tmp_path / "edited.mp4").write_bytes(bytes(edited))
    result = content_credentials.read(tmp_path / "edited.mp4", anchor)
    assert result["present"] and not result["valid"] and result["errors"]


def test_unsigned_media_reads_as_without_a_manifest(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "plain.jpg")
    assert content_credentials.read(tmp_path / "plain.jpg") == {"present": False}


def test_half_a_signing_identity_is_refused():
    with pytest.raises(content_credentials.CredentialsError, match="both"):
        content_credentials.SigningIdentity.from_files("chain.pem", "")
    assert content_credentials.SigningIdentity.from_files("", "") is None
