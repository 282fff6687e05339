#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace siftflow {
namespace {

const char* const NAMES[ISA_COUNT] = {"avx512", "avx2", "baseline"};

Isa best() {
    Isa found = BASELINE;
#if SIFTFLOW_LEVELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) {
        found = AVX512;
    } else if (__builtin_cpu_supports("x86-64-v3")) {
        found = AVX2;
    }
#endif
    return found;
}

Isa parse(const char* name) {
    for (int which = 0; which < ISA_COUNT; ++which) {
        if (std::strcmp(name, NAMES[which]) == 0) return static_cast<Isa>(which);
    }
    return ISA_COUNT;
}

Isa choose() {
    const char* asked = std::getenv("SIFTFLOW_NN_ISA");
    const Isa wanted = asked == nullptr ? ISA_COUNT : parse(asked);
    return wanted == ISA_COUNT || wanted < best() ? best() : wanted;  // never one the CPU lacks
}

std::atomic<int> chosen{-1};

}  // namespace

Isa isa() {
    int which = chosen.load(std::memory_order_relaxed);
    if (which < 0) {
        which = choose();
        chosen.store(which, std::memory_order_relaxed);
    }
    return static_cast<Isa>(which);
}

const char* isa_name() { return NAMES[isa()]; }

std::string use_isa(const std::string& name) {
    const Isa wanted = parse(name.c_str());
    if (wanted == ISA_COUNT) {
        throw std::invalid_argument("instruction set: expected avx512, avx2 or baseline, got '" + name + "'");
    }
    if (wanted < best()) {
        throw std::invalid_argument(std::string("instruction set: this CPU has up to ") + NAMES[best()] + ", not " +
                                    name);
    }
    const std::string before = isa_name();
    chosen.store(wanted, std::memory_order_relaxed);
    return before;
}

}  // namespace siftflow
