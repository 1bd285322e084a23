"""pybpf: a pure-Python eBPF toolkit."""
from pybpf.errors import (
    BPFError, SyscallError, ObjectError, VerifierError, NotSupportedError, CompileError,
    MapError, MapFullError, KeyNotFoundError, LinkError,
)

__version__ = "0.1.0"
from pybpf.program import Program, ProgramInfo, TestRunResult
from pybpf import features
from pybpf.object import ObjectSpec, Object, load
from pybpf.readers import PerfBufReader, RecordBatch, RecordError, RingBufReader, UserRingBufWriter
from pybpf.links.base import Link, LinkGroup, LinkInfo
