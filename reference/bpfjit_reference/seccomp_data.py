"""struct seccomp_data and the 32-bit loads a filter makes from it.

Layout from include/uapi/linux/seccomp.h:

    struct seccomp_data {
        int   nr;                      /* offset  0 */
        __u32 arch;                    /* offset  4 */
        __u64 instruction_pointer;     /* offset  8 */
        __u64 args[6];                 /* offset 16 + 8*i */
    };                                 /* 64 bytes */

The kernel fills it in the CPU's own byte order (populate_seccomp_data in
kernel/seccomp.c), so every field, each u64 as a whole included, is stored
in the target's byte order: on a big-endian target the high 32 bits of
args[i] are at 16 + 8*i, on a little-endian one at 20 + 8*i.
"""

import struct

SECCOMP_DATA_SIZE = 64  # sizeof(struct seccomp_data)

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_FORMATS = {"little": "<IIQ6Q", "big": ">IIQ6Q"}


def check_byteorder(byteorder):
    if byteorder not in _FORMATS:
        raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
    return byteorder


def _check_int(name, value, low, high):
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low:#x}, {high:#x}], not {value!r}")
    return value


def seccomp_data_image(nr, arch, instruction_pointer, args, byteorder):
    """Return the 64-byte struct seccomp_data image in the given byte order.

    nr may be given signed (int) or unsigned; its low 32 bits are stored.
    """
    fmt = _FORMATS[check_byteorder(byteorder)]
    _check_int("nr", nr, -(2**31), _U32)
    _check_int("arch", arch, 0, _U32)
    _check_int("instruction_pointer", instruction_pointer, 0, _U64)
    args = tuple(args)
    if len(args) != 6:
        raise ValueError(f"args must hold exactly 6 values, not {len(args)}")
    for i, arg in enumerate(args):
        _check_int(f"args[{i}]", arg, 0, _U64)
    image = struct.pack(fmt, nr & _U32, arch, instruction_pointer, *args)
    assert len(image) == SECCOMP_DATA_SIZE
    return image


def load_word(image, k, byteorder):
    """The 32-bit word at byte offset k of image, read in the given byte order."""
    check_byteorder(byteorder)
    if not isinstance(k, int) or k < 0 or k + 4 > len(image):
        raise ValueError(f"load of 4 bytes at offset {k!r} is outside the {len(image)}-byte image")
    return int.from_bytes(bytes(image[k : k + 4]), byteorder)
