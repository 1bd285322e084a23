"""ELF section names → program type, expected attach type and attach target.

pybpf follows libbpf's conventions for ``SEC("...")`` names so that C
programs written for libbpf load unchanged.  A rule either matches the whole
name (``"xdp"``), or is a prefix that may be followed by ``/target``
(``"uprobe"`` matches ``"uprobe"`` and ``"uprobe//bin/bash:readline"``).
A ``.s`` variant (``"uprobe.s"``, ``"fentry.s"``, ``"lsm.s"``) marks the
program sleepable.

Example::

    >>> info = parse_section("tracepoint/syscalls/sys_enter_openat")
    >>> info.prog_type.name, info.target
    ('TRACEPOINT', 'syscalls/sys_enter_openat')
"""

from __future__ import annotations

from functools import lru_cache

from pybpf._record import FrozenRecord
from pybpf._sys.flags import ProgFlag
from pybpf._sys.uapi import AttachType as A
from pybpf._sys.uapi import ProgType as P

__all__ = ["SectionInfo", "parse_section", "unknown_section", "SECTION_RULES", "SECTIONS_DOC"]

SECTIONS_DOC = "docs/sections.md"  # the list of SEC() names, generated from the rules and the hooks


class SectionInfo(FrozenRecord):
    """What a section name says about a program.

    ``kind`` is the rule that matched ("uprobe", "uretprobe.multi", "xdp", ...);
    ``target`` is the text after ``kind/`` (None when absent); ``attach_type``
    is the expected attach type passed at load time, or None.
    """

    __slots__ = ("kind", "prog_type", "attach_type", "target", "sleepable", "prog_flags", "retprobe")

    def __init__(self, kind: str, prog_type: P, attach_type: A | None, target: str | None,
                 sleepable: bool = False, prog_flags: int = 0, retprobe: bool = False) -> None:
        super().__init__(kind=kind, prog_type=prog_type, attach_type=attach_type, target=target,
                         sleepable=sleepable, prog_flags=prog_flags, retprobe=retprobe)

    @property
    def needs_btf_target(self) -> bool:
        """fentry/fexit/fmod_ret/lsm/tp_btf/iter/freplace resolve ``target`` in BTF at load."""
        return self.prog_type in (P.TRACING, P.LSM, P.EXT)


# (name, prog type, expected attach type, exact?)  An exact name is the whole
# section name; the others are a kind optionally followed by "/target".
# Which hook attaches each kind is said by the hooks (pybpf.links.hooks()).
_RULES: list[tuple[str, P, A | None, bool]] = [
    ("socket", P.SOCKET_FILTER, None, False),
    ("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, True),
    ("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, True),
    ("kprobe", P.KPROBE, None, False),
    ("kretprobe", P.KPROBE, None, False),
    ("uprobe", P.KPROBE, None, False),
    ("uretprobe", P.KPROBE, None, False),
    ("kprobe.multi", P.KPROBE, A.TRACE_KPROBE_MULTI, False),
    ("kretprobe.multi", P.KPROBE, A.TRACE_KPROBE_MULTI, False),
    ("kprobe.session", P.KPROBE, A.TRACE_KPROBE_SESSION, False),
    ("uprobe.multi", P.KPROBE, A.TRACE_UPROBE_MULTI, False),
    ("uretprobe.multi", P.KPROBE, A.TRACE_UPROBE_MULTI, False),
    ("uprobe.session", P.KPROBE, A.TRACE_UPROBE_SESSION, False),
    ("ksyscall", P.KPROBE, None, False),
    ("kretsyscall", P.KPROBE, None, False),
    ("usdt", P.KPROBE, None, False),
    ("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS, True),
    ("tc/egress", P.SCHED_CLS, A.TCX_EGRESS, True),
    ("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS, True),
    ("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS, True),
    ("tc", P.SCHED_CLS, None, False),
    ("classifier", P.SCHED_CLS, None, False),
    ("action", P.SCHED_ACT, None, False),
    ("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY, True),
    ("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER, True),
    ("tracepoint", P.TRACEPOINT, None, False),
    ("tp", P.TRACEPOINT, None, False),
    ("raw_tracepoint", P.RAW_TRACEPOINT, None, False),
    ("raw_tp", P.RAW_TRACEPOINT, None, False),
    ("raw_tracepoint.w", P.RAW_TRACEPOINT_WRITABLE, None, False),
    ("raw_tp.w", P.RAW_TRACEPOINT_WRITABLE, None, False),
    ("tp_btf", P.TRACING, A.TRACE_RAW_TP, False),
    ("fentry", P.TRACING, A.TRACE_FENTRY, False),
    ("fmod_ret", P.TRACING, A.MODIFY_RETURN, False),
    ("fexit", P.TRACING, A.TRACE_FEXIT, False),
    ("freplace", P.EXT, None, False),
    ("lsm", P.LSM, A.LSM_MAC, False),
    ("lsm_cgroup", P.LSM, A.LSM_CGROUP, False),
    ("iter", P.TRACING, A.TRACE_ITER, False),
    ("syscall", P.SYSCALL, None, True),
    ("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, True),
    ("xdp/devmap", P.XDP, A.XDP_DEVMAP, True),
    ("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, True),
    ("xdp/cpumap", P.XDP, A.XDP_CPUMAP, True),
    ("xdp.frags", P.XDP, A.XDP, True),
    ("xdp", P.XDP, A.XDP, False),
    ("perf_event", P.PERF_EVENT, None, False),
    ("lwt_in", P.LWT_IN, None, True),
    ("lwt_out", P.LWT_OUT, None, True),
    ("lwt_xmit", P.LWT_XMIT, None, True),
    ("lwt_seg6local", P.LWT_SEG6LOCAL, None, True),
    ("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, True),
    ("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, True),
    ("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, True),
    ("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT, True),
    ("sk_skb", P.SK_SKB, None, False),
    ("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, True),
    ("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, True),
    ("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, True),
    ("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, True),
    ("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, True),
    ("cgroup/skb", P.CGROUP_SKB, None, True),
    ("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, True),
    ("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, True),
    ("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, True),
    ("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, True),
    ("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, True),
    ("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, True),
    ("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, True),
    ("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, True),
    ("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, True),
    ("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, True),
    ("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, True),
    ("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, True),
    ("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG, True),
    ("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, True),
    ("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, True),
    ("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG, True),
    ("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, True),
    ("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, True),
    ("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME, True),
    ("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, True),
    ("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, True),
    ("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME, True),
    ("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, True),
    ("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, True),
    ("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, True),
    ("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, True),
    ("struct_ops", P.STRUCT_OPS, None, False),
    ("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, True),
    ("netfilter", P.NETFILTER, A.NETFILTER, True),
]

# Kinds whose ".s" variant exists and makes the program sleepable.
_SLEEPABLE_KINDS = {
    "uprobe", "uretprobe", "uprobe.multi", "uretprobe.multi", "usdt", "fentry", "fexit",
    "fmod_ret", "lsm", "iter", "struct_ops",
}
_RETPROBE_KINDS = {"kretprobe", "uretprobe", "kretprobe.multi", "uretprobe.multi", "kretsyscall"}

SECTION_RULES = {name: (ptype, atype, exact) for name, ptype, atype, exact in _RULES}


@lru_cache(maxsize=512)
def parse_section(section: str) -> SectionInfo | None:
    """Describe the program in ``section``; None if no rule matches (not a program section).

    The answer depends on the name alone and is read-only, so it is kept per name: an object names
    a few sections, and programs load from the same objects again and again."""
    rule = SECTION_RULES.get(section)
    if rule is not None and rule[2]:
        return _info(section, section, None)  # exact names may contain a slash
    kind, sep, rest = section.partition("/")
    base = kind[:-2] if kind.endswith(".s") and kind[:-2] in _SLEEPABLE_KINDS else kind
    rule = SECTION_RULES.get(base)
    if rule is None or rule[2]:
        return None
    return _info(base, kind, rest if sep and rest else None)


def _info(base: str, kind: str, target: str | None) -> SectionInfo:
    ptype, atype, _ = SECTION_RULES[base]
    sleepable = kind.endswith(".s") or base == "syscall"
    flags = ProgFlag.SLEEPABLE if sleepable else 0
    if base.startswith("xdp.frags"):
        flags |= ProgFlag.XDP_HAS_FRAGS
    return SectionInfo(
        kind=base, prog_type=ptype, attach_type=atype, target=target, sleepable=sleepable,
        prog_flags=int(flags), retprobe=base in _RETPROBE_KINDS,
    )


def unknown_section(section: str) -> str:
    """The message for a section name no rule matches, with the closest known names."""
    import difflib

    kind, sep, rest = section.partition("/")
    names = sorted(SECTION_RULES) + sorted(f"{k}.s" for k in _SLEEPABLE_KINDS)
    close = difflib.get_close_matches(section, [n for n in names if SECTION_RULES.get(n, (0, 0, False))[2]], n=3)
    close += [k + sep + rest for k in difflib.get_close_matches(kind, names, n=3)
              if not SECTION_RULES.get(k, (0, 0, False))[2]]
    hint = f"; did you mean {' or '.join(repr(c) for c in list(dict.fromkeys(close))[:3])}?" if close else ""
    return f"unknown section name {section!r}{hint} (the SEC() names pybpf knows are listed in {SECTIONS_DOC})"
