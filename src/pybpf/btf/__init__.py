"""BTF: the BPF Type Format — model, reader, writer, kernel BTF cache, value codec.

- :mod:`pybpf.btf.types`: one slotted class per BTF kind (``Int``, ``Struct``,
  ``Pointer``...); :mod:`pybpf.btf.typeinfo`: ``resolve``/``sizeof``/``alignof``/
  ``type_name`` (also importable from ``types``).
- :mod:`pybpf.btf.reader`: ``Spec.parse(blob)`` (lazy decoding, split BTF) and
  ``ExtInfo.parse(btf_ext, spec)`` (func_info, line_info, CO-RE relocations).
- :mod:`pybpf.btf.writer`: ``encode(types)`` / ``Builder`` -> a blob for
  BPF_BTF_LOAD; ``sanitize(spec, supported_kinds)`` for older kernels.
- :mod:`pybpf.btf.kernel`: ``kernel_spec()``, ``module_spec(name)``,
  ``find_in_kernel(name, kind)``.
- :mod:`pybpf.btf.codec`: ``codec_for(t).decode(raw)`` / ``.encode(value)``.

No system calls here: loading the blob into the kernel is the loader's job.

Example::

    from pybpf import btf

    task = btf.kernel_spec().find("task_struct", btf.BTFKind.STRUCT)
    pid = task.member("pid")
    print(pid.offset, btf.type_name(pid.type), btf.sizeof(pid.type))

    spec = btf.Spec.parse(btf_section_bytes)
    event = btf.codec_for(spec.find("event")).decode(sample)
"""

from pybpf._lazy import lazy_exports

# Each name is imported from its module on first use: loading an object reads BTF, it does
# not need the value codecs.
__getattr__, __dir__ = lazy_exports(globals(), {
    "types": """BTFKind IntEncoding FuncLinkage VarLinkage POINTER_SIZE Type Void VOID Int Pointer Array
                Composite Struct Union Member Enum Enum64 EnumValue Fwd Typedef Qualifier Volatile Const
                Restrict TypeTag Func FuncProto Param Var Datasec VarSecinfo Float DeclTag""",
    "typeinfo": "resolve sizeof alignof type_name essential_name shallow_key",
    "reader": "Spec StringTable ExtInfo FuncInfo LineInfo CoreRelo CoreRelocKind",
    "writer": "Builder sanitize encode_ext",
    "kernel": "kernel_spec module_spec module_names find_in_kernel",
    "codec": "Codec Record codec_for",
}, renamed={"encode_btf": ("writer", "encode")})

__all__ = [
    "BTFKind", "IntEncoding", "FuncLinkage", "VarLinkage", "POINTER_SIZE",
    "Type", "Void", "VOID", "Int", "Pointer", "Array", "Composite", "Struct", "Union", "Member",
    "Enum", "Enum64", "EnumValue", "Fwd", "Typedef", "Qualifier", "Volatile", "Const",
    "Restrict", "TypeTag", "Func", "FuncProto", "Param", "Var", "Datasec", "VarSecinfo",
    "Float", "DeclTag", "StringTable",
    "resolve", "sizeof", "alignof", "type_name", "essential_name", "shallow_key",
    "Spec", "ExtInfo", "FuncInfo", "LineInfo", "CoreRelo", "CoreRelocKind",
    "Builder", "sanitize", "encode_ext", "encode_btf",
    "kernel_spec", "module_spec", "module_names", "find_in_kernel",
    "Codec", "Record", "codec_for",
]
