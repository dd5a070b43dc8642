#!/usr/bin/env python3
"""An independent checker for armorred's cosign-format keys and signatures.

Written from the formats' specifications, sharing no code with armorred, so
that the Rust integration test `tests/it/sign_compat.rs` can check each side
against the other:

- private key: PEM "ENCRYPTED SIGSTORE PRIVATE KEY" (or "... COSIGN ...")
  whose body is go-securesystemslib's JSON box: scrypt (N, r, p, 32-byte salt)
  derives the key, NaCl secretbox seals the PKCS#8 DER under a 24-byte nonce;
- signature: base64 of an ASN.1 DER ECDSA P-256 signature over SHA-256 of the
  simple-signing payload;
- signature image: OCI manifest whose layers are payload blobs of media type
  application/vnd.dev.cosign.simplesigning.v1+json, each carrying its
  signature in the annotation dev.cosignproject.cosign/signature.

Needs the pip packages `cryptography` and `PyNaCl`. The passphrase is read
from COSIGN_PASSWORD, never from the command line.

Exit status: 0 the check passed, 1 it failed (reason on stderr), 2 usage,
3 the Python modules are missing.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import sys

try:
    import nacl.exceptions
    import nacl.secret
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError as missing:  # pragma: no cover - reported to the caller
    MISSING = missing
else:
    MISSING = None

LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_TYPE = "cosign container image signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ACCEPTED_SCRYPT = {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}


class CheckFailed(Exception):
    pass


def passphrase():
    value = os.environ.get("COSIGN_PASSWORD")
    if value is None:
        raise CheckFailed("COSIGN_PASSWORD is not set")
    return value.encode()


def read_pem(text):
    match = re.search(
        r"-----BEGIN ([A-Z ]+)-----\r?\n(.*?)-----END \1-----", text, re.S
    )
    if not match:
        raise CheckFailed("no PEM block")
    return match.group(1), base64.b64decode("".join(match.group(2).split()))


def write_pem(label, data):
    body = base64.b64encode(data).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def scrypt_key(password, salt, n, r, p):
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=512 * 1024 * 1024, dklen=32)


def decrypt_key(pem_text, password):
    label, body = read_pem(pem_text)
    if label not in LABELS:
        raise CheckFailed("PEM label %r is not a cosign private key" % label)
    box = json.loads(body)
    if box["kdf"]["name"] != "scrypt" or box["cipher"]["name"] != "nacl/secretbox":
        raise CheckFailed("unexpected kdf/cipher: %r / %r" % (box["kdf"]["name"], box["cipher"]["name"]))
    params = box["kdf"]["params"]
    triple = (params["N"], params["r"], params["p"])
    if triple not in ACCEPTED_SCRYPT:
        raise CheckFailed("scrypt parameters %r are not ones cosign writes" % (triple,))
    salt = base64.b64decode(box["kdf"]["salt"], validate=True)
    nonce = base64.b64decode(box["cipher"]["nonce"], validate=True)
    ciphertext = base64.b64decode(box["ciphertext"], validate=True)
    if len(salt) != 32 or len(nonce) != 24:
        raise CheckFailed("salt is %d bytes, nonce %d (expected 32 and 24)" % (len(salt), len(nonce)))
    key = scrypt_key(password, salt, *triple)
    try:
        der = nacl.secret.SecretBox(key).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise CheckFailed("secretbox did not open: wrong passphrase")
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
        raise CheckFailed("not an ECDSA P-256 key")
    return label, triple, private


def public_pem(public_key):
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public(path):
    with open(path) as f:
        key = serialization.load_pem_public_key(f.read().encode())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CheckFailed("public key is not ECDSA P-256")
    return key


def verify_signature(public_key, payload, signature_b64):
    try:
        der = base64.b64decode(signature_b64, validate=True)
        public_key.verify(der, payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as e:
        raise CheckFailed("signature does not verify: %s" % (e or "invalid signature"))


def check_payload(payload, image_digest):
    doc = json.loads(payload)
    critical = doc["critical"]
    if critical["type"] != COSIGN_TYPE:
        raise CheckFailed("critical.type is %r" % critical["type"])
    signed = critical["image"]["docker-manifest-digest"]
    if signed != image_digest:
        raise CheckFailed("payload signs %s, not %s" % (signed, image_digest))
    if not isinstance(critical["identity"]["docker-reference"], str):
        raise CheckFailed("critical.identity.docker-reference is missing")
    return doc


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cmd_decrypt(args):
    with open(args.key) as f:
        label, triple, private = decrypt_key(f.read(), passphrase())
    result = {"label": label, "scrypt": list(triple), "public_key_pem": public_pem(private.public_key())}
    if args.pub:
        with open(args.pub) as f:
            result["matches_pub"] = read_pem(f.read())[1] == read_pem(result["public_key_pem"])[1]
        if not result["matches_pub"]:
            raise CheckFailed("the private key does not belong to %s" % args.pub)
    print(json.dumps(result))


def cmd_generate(args):
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, nonce = os.urandom(32), os.urandom(24)
    n, r, p = args.scrypt_n, 8, 1
    sealed = nacl.secret.SecretBox(scrypt_key(passphrase(), salt, n, r, p)).encrypt(der, nonce).ciphertext
    box = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    fd = os.open(args.prefix + ".key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(write_pem(args.label, json.dumps(box, separators=(",", ":")).encode()))
    with open(args.prefix + ".pub", "x") as f:
        f.write(public_pem(private.public_key()))


def cmd_sign(args):
    with open(args.key) as f:
        _, _, private = decrypt_key(f.read(), passphrase())
    with open(args.payload, "rb") as f:
        der = private.sign(f.read(), ec.ECDSA(hashes.SHA256()))
    print(base64.b64encode(der).decode())


def cmd_verify(args):
    with open(args.payload, "rb") as f:
        payload = f.read()
    verify_signature(load_public(args.pub), payload, args.signature)
    check_payload(payload, args.digest)
    print(json.dumps({"verified": True}))


def cmd_verify_image(args):
    """What `cosign verify --key` checks, against a manifest and a blob dir."""
    public_key = load_public(args.pub)
    with open(args.manifest, "rb") as f:
        manifest = json.loads(f.read())
    if manifest.get("schemaVersion") != 2 or manifest.get("mediaType") != OCI_MANIFEST:
        raise CheckFailed("not an OCI image manifest")

    def blob(descriptor):
        digest = descriptor["digest"]
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise CheckFailed("bad digest %r" % digest)
        with open(os.path.join(args.blobs, digest.split(":")[1]), "rb") as f:
            data = f.read()
        if sha256(data) != digest or len(data) != descriptor["size"]:
            raise CheckFailed("blob %s does not match its descriptor" % digest)
        return data

    config_desc = manifest["config"]
    if config_desc["mediaType"] != OCI_CONFIG:
        raise CheckFailed("config media type is %r" % config_desc["mediaType"])
    config = json.loads(blob(config_desc))
    layers = manifest["layers"]
    if config["rootfs"] != {"type": "layers", "diff_ids": [l["digest"] for l in layers]}:
        raise CheckFailed("config rootfs does not list the payload layers")
    if len(config.get("history", [])) != len(layers):
        raise CheckFailed("config history does not have one entry per layer")

    failures = []
    for index, layer in enumerate(layers):
        if layer["mediaType"] != SIMPLE_SIGNING:
            raise CheckFailed("layer %d media type is %r" % (index, layer["mediaType"]))
        payload = blob(layer)
        try:
            verify_signature(public_key, payload, layer["annotations"][SIGNATURE_ANNOTATION])
            check_payload(payload, args.digest)
        except CheckFailed as e:
            failures.append("layer %d: %s" % (index, e))
            continue
        print(json.dumps({"verified": True, "layer": index, "layers": len(layers)}))
        return
    raise CheckFailed("no layer verifies: " + "; ".join(failures) if failures else "no layers")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-modules", help="exit 0 if cryptography and PyNaCl import, else 3")
    p = sub.add_parser("decrypt", help="decrypt a cosign private key; print its public key")
    p.add_argument("--key", required=True)
    p.add_argument("--pub", help="also check the key matches this public key")
    p = sub.add_parser("generate", help="write <prefix>.key and <prefix>.pub in cosign's format")
    p.add_argument("--prefix", required=True)
    p.add_argument("--label", default=LABELS[0], choices=LABELS)
    p.add_argument("--scrypt-n", type=int, default=32768, choices=[32768, 65536])
    p = sub.add_parser("sign", help="print the base64 DER signature of a payload file")
    p.add_argument("--key", required=True)
    p.add_argument("--payload", required=True)
    p = sub.add_parser("verify", help="verify one payload + signature + digest claim")
    p.add_argument("--pub", required=True)
    p.add_argument("--payload", required=True)
    p.add_argument("--signature", required=True)
    p.add_argument("--digest", required=True)
    p = sub.add_parser("verify-image", help="verify a signature manifest against an image digest")
    p.add_argument("--pub", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--blobs", required=True, help="directory of blobs named by their sha256 hex")
    p.add_argument("--digest", required=True)
    args = parser.parse_args()

    if MISSING is not None:
        print("cosign_check.py: missing Python module: %s (pip install cryptography PyNaCl)" % MISSING,
              file=sys.stderr)
        return 3
    if args.command == "check-modules":
        return 0
    commands = {
        "decrypt": cmd_decrypt,
        "generate": cmd_generate,
        "sign": cmd_sign,
        "verify": cmd_verify,
        "verify-image": cmd_verify_image,
    }
    try:
        commands[args.command](args)
    except CheckFailed as e:
        print("cosign_check.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
