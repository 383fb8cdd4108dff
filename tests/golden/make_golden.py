#!/usr/bin/env python3
"""make_golden.py - writes tests/golden/v1.txt, the golden vectors of the
v1 formats, and tests/golden/v2.txt, the record of version 2 (v1 plus the
TOKEN section), from the specifications in lib/record.h and lib/crypto.h
and RFC 5869, independently of the C code (so the C test checks the code
against the documented format, not against itself).

Needs python3-cryptography (AES-GCM) to regenerate; the test only reads
the .txt files.  Regenerate only when a format version is added: a
vector must never change (old stores hold records of every version).

    python3 tests/golden/make_golden.py > tests/golden/v1.txt
    python3 tests/golden/make_golden.py v2 > tests/golden/v2.txt
"""
import hashlib
import hmac
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def hkdf_sha256(ikm, info, n=32, salt=b""):
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def labeled(label, data):
    # lib/util.c: the label's NUL terminator is hashed too.
    return hashlib.sha256(label.encode() + b"\0" + data).digest()


def rec(state, flags, family, u64s, handle, csrf, ip, ua_hash, prev, succ,
        user, ua, data, token=None):
    sec = (1 if prev else 0) | (2 if succ else 0) | (4 if token else 0)
    b = bytes([2 if token else 1, state, flags, family, sec])
    b += struct.pack("<7Q", *u64s)
    b += handle + csrf + ip + ua_hash
    if prev:
        b += struct.pack("<Q", prev[0]) + prev[1]
    if succ:
        b += struct.pack("<Q", succ[0]) + succ[1] + succ[2]
    if token:
        # u64 rt_expires_at | rt_prev_until | at_iat | at_exp | 32 rt_hash |
        # 32 rt_prev_hash | wrap rt_succ_wrap | 16 at_jti | u16 aud_len | aud
        b += struct.pack("<4Q", *token[0]) + token[1] + token[2] + token[3]
        b += token[4] + struct.pack("<H", len(token[5])) + token[5]
    b += struct.pack("<H", len(user)) + user
    b += struct.pack("<H", len(ua)) + ua
    b += struct.pack("<I", len(data)) + data
    return b


def seq(start, n):
    return bytes((start + i) & 0xFF for i in range(n))


lines = []


def put(name, value):
    lines.append("%s = %s" % (name, value.hex()))


key = seq(0, 32)  # the fixtures' test key "golden-key-1"
put("key", key)
sub = hkdf_sha256(key, b"sessiond record v1")
put("hkdf_record_v1", sub)
secret = seq(0x40, 32)
put("label_secret", secret)
put("label_user_v1", labeled("sessiond user v1", b"alice"))
put("label_handle_v1", labeled("sessiond handle v1", secret))
put("label_wrap_v1", labeled("sessiond successor wrap v1", secret))

# Record A: active, IPv4, remember, no optional sections.
u64a = (1800000000 << 0, 1800000000, 1800000010, 1800001800, 1800086400, 3,
        (1800000000 << 20) | 7)
a = rec(1, 0x2 | 0x4, 4, u64a, seq(0x10, 16), seq(0x20, 32),
        bytes([203, 0, 113, 7]), seq(0x60, 32), None, None, b"alice",
        b"Mozilla/5.0 golden", b'{"cart":1}')
put("record_a", a)
# Record B: rotated tombstone, IPv6, elevated, both optional sections.
u64b = (1700000000, 1700000300, 1700000300, 1700002100, 1700086400, 0,
        (1700000000 << 20) | 1)
b = rec(2, 0x1, 6, u64b, seq(0x11, 16), seq(0x21, 32),
        bytes.fromhex("20010db8000000000000000000000001"), seq(0x61, 32),
        (1700000330, seq(0x81, 32)),
        (1700000330, seq(0x91, 32), seq(0xA1, 12 + 32 + 16)),
        b"bob@example.org", b"", b"")
put("record_b", b)

# Record A sealed (lib/crypto.h): u8 1 | u8 kid_len | kid | nonce[12] |
# ciphertext | tag[16]; AAD = the header (version, kid_len, kid) || storage key.
kid = b"golden-key-1"
skey = seq(0xC0, 32)
nonce = seq(0xE0, 12)
hdr = bytes([1, len(kid)]) + kid
ct = AESGCM(sub).encrypt(nonce, a, hdr + skey)  # ciphertext || tag
put("seal_skey", skey)
put("sealed_a", hdr + nonce + ct)

if sys.argv[1:] == ["v2"]:
    # Record C: record A with a refresh token (record version 2).
    lines = []
    c = rec(1, 0x2 | 0x4, 4, u64a, seq(0x10, 16), seq(0x20, 32),
            bytes([203, 0, 113, 7]), seq(0x60, 32), None, None, b"alice",
            b"Mozilla/5.0 golden", b'{"cart":1}',
            token=((1700090000, 1700000030, 1700000000, 1700000300),
                   seq(0xB1, 32), seq(0xC1, 32), seq(0xD1, 12 + 32 + 16),
                   seq(0xE1, 16), b'"api.example.com"'))
    put("record_c", c)
    print("# tests/golden/v2.txt - golden vector of the version 2 record, written")
    print("# by tests/golden/make_golden.py v2 from the specification in")
    print("# lib/record.h (not by the C code).  Read by tests/unit/lib/test_golden.c.")
    print("\n".join(lines))
    sys.exit(0)

print("# tests/golden/v1.txt - golden vectors of the v1 formats, written by")
print("# tests/golden/make_golden.py from the specifications (not by the C")
print("# code).  Read by tests/unit/lib/test_golden.c.  Never edit a v1 line.")
print("\n".join(lines))
