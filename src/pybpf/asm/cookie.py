"""Finding and neutralising ``bpf_get_attach_cookie`` calls in bytecode.

On a kernel without BPF cookies (before Linux 5.15) the verifier refuses a
program that calls helper 174.  pybpf then loads the program with each such
call replaced by ``r0 = 0`` (same length, so jumps and BTF line info stay
valid) and :mod:`pybpf.links.fallback` loads one clone per cookie with the
constant in its place.

Example::

    >>> code = bytes.fromhex("85000000ae000000" "9500000000000000")
    >>> calls_cookie_helper(code)
    True
    >>> zero_cookie_calls(code).hex()
    'b7000000000000009500000000000000'
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# HelperID.get_attach_cookie: helper ids are ABI and never change (tests/test_asm checks it), and
# naming the number here spares every load the creation of the HelperID enum.
COOKIE_HELPER = 174
COOKIE_CALL = struct.pack("<BBhi", 0x85, 0, 0, COOKIE_HELPER)
_R0_ZERO = struct.pack("<BBhi", 0xB7, 0, 0, 0)


def _call_sites(code: bytes) -> list[int]:
    sites = []
    at = code.find(COOKIE_CALL)
    while at >= 0:
        if at % 8 == 0:
            sites.append(at)
        at = code.find(COOKIE_CALL, at + 1)
    return sites


def calls_cookie_helper(insns: Any) -> bool:
    """True if ``insns`` (bytes, or Instructions) call ``bpf_get_attach_cookie``."""
    if insns is None:
        return False
    if isinstance(insns, (bytes, bytearray, memoryview)):
        return bool(_call_sites(bytes(insns)))
    return any(i.code == 0x85 and i.src == 0 and i.imm == COOKIE_HELPER for i in insns)


def zero_cookie_calls(code: bytes) -> bytes:
    """``code`` with every ``call bpf_get_attach_cookie`` replaced by ``r0 = 0``."""
    sites = _call_sites(code)
    if not sites:
        return code
    out = bytearray(code)
    for at in sites:
        out[at:at + 8] = _R0_ZERO
    return bytes(out)
