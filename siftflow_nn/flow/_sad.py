"""The sum of absolute differences of 32 bytes, the data term's inner step, as one vector sum.

Written as a byte loop, the data term's distance becomes ``psadbw`` on 8 bytes at a time: LLVM
picks the loop's vector width for its int32 sum. Written as one 32-byte vector expression (below),
the x86 backend lowers it to AVX2's ``vpsadbw`` on 32 bytes where the CPU has it, and to other
instructions where not: the descriptor distances take about 2.5x less time.
"""

from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

WIDTH = 32  # bytes per call

_I16, _I32 = llvm_ir.IntType(16), llvm_ir.IntType(32)
_BYTES = llvm_ir.VectorType(llvm_ir.IntType(8), WIDTH)


@intrinsic
def sum_of_differences_32(typingctx, address1, address2):
    """``sum |a[i] - b[i]|`` over the 32 bytes at ``address1`` and ``address2`` (uintp, any
    alignment), as an int32."""

    def codegen(context, builder, signature, args):
        first, second = (builder.load(builder.inttoptr(arg, _BYTES.as_pointer()), align=1) for arg in args)
        wide = llvm_ir.VectorType(_I16, WIDTH)
        difference = builder.sub(builder.zext(first, wide), builder.zext(second, wide))
        negative = builder.icmp_signed("<", difference, llvm_ir.Constant(wide, None))
        magnitude = builder.select(negative, builder.neg(difference), difference)
        total_type = llvm_ir.VectorType(_I32, WIDTH)
        reduce = llvm_ir.FunctionType(_I32, [total_type])
        reduce_add = cgutils.get_or_insert_function(builder.module, reduce, f"llvm.vector.reduce.add.v{WIDTH}i32")
        return builder.call(reduce_add, [builder.zext(magnitude, total_type)])

    return types.int32(types.uintp, types.uintp), codegen
