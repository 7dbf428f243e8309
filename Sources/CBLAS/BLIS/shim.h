// BLIS (Debian's libblis-dev) through its CBLAS interface, built with SWIFTGPT_BLAS=blis
// (Package.swift). The same swiftgpt_blas_* helpers as the OpenBLAS shim in Sources/CBLAS.
// blis.h declares the CBLAS functions too (Debian builds BLIS with BLIS_ENABLE_CBLAS).
#pragma once
#include <blis.h>

static inline const char *swiftgpt_blas_provider(void) { return "BLIS"; }

/// The version, as "BLIS 0.9.0".
static inline const char *swiftgpt_blas_config(void) {
    static char line[64];
    snprintf(line, sizeof line, "BLIS %s", bli_info_get_version_str());
    return line;
}

/// The sub-configuration BLIS chose for this CPU at load time ("zen3", "haswell", "skx", ...).
static inline const char *swiftgpt_blas_kernel(void) { return bli_arch_string(bli_arch_query_id()); }

static inline void swiftgpt_blas_set_threads(int n) { bli_thread_set_num_threads(n); }
static inline const char *swiftgpt_blas_thread_call(void) { return "bli_thread_set_num_threads"; }
