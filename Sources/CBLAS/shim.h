// OpenBLAS through its CBLAS interface (the default CBLAS; Sources/CBLAS/BLIS is the other).
// Every matrix multiply in SwiftGPT goes through cblas_sgemm. Both shims give the same
// swiftgpt_blas_* helpers, so the Swift code names no provider's own functions.
#pragma once
#include <cblas.h>

/// The library's name, as logs print it.
static inline const char *swiftgpt_blas_provider(void) { return "OpenBLAS"; }

/// Its build line: "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64".
static inline const char *swiftgpt_blas_config(void) { return openblas_get_config(); }

/// The kernel it chose for this CPU ("Haswell", "SkylakeX", "Prescott", ...).
static inline const char *swiftgpt_blas_kernel(void) { return openblas_get_corename(); }

/// The thread knob of this library.
static inline void swiftgpt_blas_set_threads(int n) { openblas_set_num_threads(n); }
static inline const char *swiftgpt_blas_thread_call(void) { return "openblas_set_num_threads"; }
