"""Pinning in bpffs, one behaviour for maps, programs and links.

A pin is a file on a bpffs that holds a kernel object (Linux 4.4; links 5.7)
so it outlives the process.  :meth:`Pinnable.pin` mounts bpffs at
/sys/fs/bpf when the path is below it and nothing is mounted there;
:meth:`Pinnable.unpin` removes only files on a bpffs; each class's
``from_pin(path)`` opens the object and remembers the path.

Example::

    counts.pin("/sys/fs/bpf/counts")
    again = pybpf.maps.Map.from_pin("/sys/fs/bpf/counts")
    again.unpin()                      # removes the pin it was opened from
"""

from __future__ import annotations

import os

from pybpf._sys import commands as _cmd
from pybpf.errors import BPFError

__all__ = ["Pinnable"]


class Pinnable:
    """``pin``/``unpin``/``pinned_path`` for a class with ``_label``, ``_pinned`` and an fd."""

    __slots__ = ()
    _label: str
    _pinned: str | None

    def _pin_fd(self) -> int:
        """The fd to pin (subclasses raise their own error when there is none)."""
        return self.fileno()  # type: ignore[attr-defined]

    def _pin_error(self, exc: BPFError) -> BPFError:
        """The error to raise for a failed pin or unpin (a class may narrow its type)."""
        return exc

    @property
    def pinned_path(self) -> str | None:
        """Where this object pinned it, or the pin it was opened from; None when neither."""
        return self._pinned

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin at ``path`` on a bpffs so the kernel object outlives this process."""
        path = os.fspath(path)
        fd = self._pin_fd()
        try:
            _cmd.obj_pin(fd, path)
        except BPFError as exc:
            raise self._pin_error(exc).add_context(self._label) from None
        self._pinned = path

    def unpin(self, path: str | os.PathLike[str] | None = None) -> None:
        """Remove the pin at ``path`` (which must exist), or else this object's own pin, if any.

        Only a file on a bpffs is removed; anything else raises SyscallError (EINVAL).
        """
        target = os.fspath(path) if path is not None else self._pinned
        if target is None:
            return
        try:
            _cmd.unpin(target, missing_ok=path is None)
        except BPFError as exc:
            raise self._pin_error(exc).add_context(self._label) from None
        if target == self._pinned:
            self._pinned = None
