"""Print a log2 histogram of the sizes read() returns in one process: python3 readsize.py PID [SECONDS]"""
import sys
import time

import pybpf
import pybpf.hist


def read_sizes(pid, during, path="readsize.bpf.o"):
    spec = pybpf.ObjectSpec.from_file(path)
    spec.variables["target_tgid"].value = pid      # a const volatile: set before load
    with spec.load() as obj:
        links = obj.attach_all()                   # from SEC("tracepoint/syscalls/sys_exit_read")
        during()
        return pybpf.hist.log2(obj.maps["sizes"], label="bytes")


if __name__ == "__main__":
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    read_sizes(int(sys.argv[1]), lambda: time.sleep(seconds))
