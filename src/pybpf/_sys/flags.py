"""Flag constants of the bpf(2) and perf_event_open(2) ABI.

These are ``#define``s or anonymous enums in the UAPI headers, so they are not
generated from BTF like :mod:`pybpf._sys.uapi`; values are from
``include/uapi/linux/bpf.h`` and ``perf_event.h`` (Linux 6.18).
"""

from enum import IntEnum, IntFlag


class MapFlag(IntFlag):
    """``map_flags`` for BPF_MAP_CREATE."""

    NO_PREALLOC = 1 << 0
    NO_COMMON_LRU = 1 << 1
    NUMA_NODE = 1 << 2
    RDONLY = 1 << 3
    WRONLY = 1 << 4
    STACK_BUILD_ID = 1 << 5
    ZERO_SEED = 1 << 6
    RDONLY_PROG = 1 << 7
    WRONLY_PROG = 1 << 8
    CLONE = 1 << 9
    MMAPABLE = 1 << 10  # Linux 5.5
    PRESERVE_ELEMS = 1 << 11
    INNER_MAP = 1 << 12
    LINK = 1 << 13
    PATH_FD = 1 << 14
    VTYPE_BTF_OBJ_FD = 1 << 15
    TOKEN_FD = 1 << 16
    SEGV_ON_FAULT = 1 << 17
    NO_USER_CONV = 1 << 18


class UpdateFlag(IntEnum):
    """``flags`` of BPF_MAP_UPDATE_ELEM."""

    ANY = 0
    NOEXIST = 1
    EXIST = 2
    LOCK = 4


class ProgFlag(IntFlag):
    """``prog_flags`` of BPF_PROG_LOAD."""

    STRICT_ALIGNMENT = 1 << 0
    ANY_ALIGNMENT = 1 << 1
    TEST_RND_HI32 = 1 << 2
    TEST_STATE_FREQ = 1 << 3
    SLEEPABLE = 1 << 4
    XDP_HAS_FRAGS = 1 << 5
    XDP_DEV_BOUND_ONLY = 1 << 6
    TEST_REG_INVARIANTS = 1 << 7
    TOKEN_FD = 1 << 16


class AttachFlag(IntFlag):
    """``attach_flags`` of BPF_PROG_ATTACH (cgroup) and mprog positions (tcx)."""

    ALLOW_OVERRIDE = 1 << 0
    ALLOW_MULTI = 1 << 1
    REPLACE = 1 << 2
    BEFORE = 1 << 3
    AFTER = 1 << 4
    ID = 1 << 5
    LINK = 1 << 13


class TestRunFlag(IntFlag):
    __test__ = False
    RUN_ON_CPU = 1 << 0
    XDP_LIVE_FRAMES = 1 << 1
    SKB_CHECKSUM_COMPLETE = 1 << 2


class XdpFlag(IntFlag):
    """``flags`` of an XDP attach (netlink IFLA_XDP_FLAGS and BPF_LINK_CREATE)."""

    UPDATE_IF_NOEXIST = 1 << 0
    SKB_MODE = 1 << 1
    DRV_MODE = 1 << 2
    HW_MODE = 1 << 3
    REPLACE = 1 << 4


UPROBE_MULTI_RETURN = 1 << 0
KPROBE_MULTI_RETURN = 1 << 0
QUERY_EFFECTIVE = 1 << 0
PIN_BY_NAME = 1  # libbpf's LIBBPF_PIN_BY_NAME in a BTF map definition's "pinning"

# perf_event_open(2)
PERF_FLAG_FD_NO_GROUP = 1 << 0
PERF_FLAG_FD_OUTPUT = 1 << 1
PERF_FLAG_PID_CGROUP = 1 << 2
PERF_FLAG_FD_CLOEXEC = 1 << 3

# Bits of perf_event_attr.flags (the C bitfield starting with "disabled").
PERF_ATTR_FLAG_DISABLED = 1 << 0
PERF_ATTR_FLAG_INHERIT = 1 << 1
PERF_ATTR_FLAG_EXCLUDE_USER = 1 << 4
PERF_ATTR_FLAG_EXCLUDE_KERNEL = 1 << 5
PERF_ATTR_FLAG_EXCLUDE_HV = 1 << 6
PERF_ATTR_FLAG_FREQ = 1 << 10
PERF_ATTR_FLAG_WATERMARK = 1 << 14
PERF_ATTR_FLAG_WRITE_BACKWARD = 1 << 27

# perf ioctls: _IO('$', n) / _IOW('$', n, type) on x86_64 and arm64 encodings.
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_REFRESH = 0x2402
PERF_EVENT_IOC_RESET = 0x2403
PERF_EVENT_IOC_PERIOD = 0x40082404
PERF_EVENT_IOC_SET_OUTPUT = 0x2405
PERF_EVENT_IOC_SET_FILTER = 0x40082406
PERF_EVENT_IOC_ID = 0x80082407
PERF_EVENT_IOC_SET_BPF = 0x40042408
PERF_EVENT_IOC_PAUSE_OUTPUT = 0x40042409
