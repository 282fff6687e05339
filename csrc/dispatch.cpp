#include "dispatch.h"

#include <cstdlib>
#include <cstring>

namespace siftflow {
namespace {

Isa choose() {
    const char* asked = std::getenv("SIFTFLOW_NN_ISA");
    Isa best = BASELINE;
#if SIFTFLOW_LEVELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) {
        best = AVX512;
    } else if (__builtin_cpu_supports("x86-64-v3")) {
        best = AVX2;
    }
#endif
    if (asked == nullptr || *asked == '\0') return best;
    const Isa wanted = std::strcmp(asked, "avx512") == 0 ? AVX512 : std::strcmp(asked, "avx2") == 0 ? AVX2 : BASELINE;
    return wanted < best ? best : wanted;  // never one the CPU lacks
}

}  // namespace

Isa isa() {
    static const Isa chosen = choose();
    return chosen;
}

const char* isa_name() {
    static const char* names[] = {"avx512", "avx2", "baseline"};
    return names[isa()];
}

}  // namespace siftflow
