// BLIS (Debian's libblis-dev) through its CBLAS interface, built with SWIFTGPT_BLAS=blis
// (Package.swift). The same swiftgpt_blas_* helpers as the OpenBLAS shim in Sources/CBLAS.
//
// Debian's blis.h includes <omp.h> (its default BLIS is built with OpenMP), which the
// compiler inside Swift does not have; so this takes BLIS's own self-contained cblas.h
// (on the multiarch include path, as blis-openmp/cblas.h) and declares the four BLIS
// calls it needs as BLIS 0.9 defines them (dim_t is int64_t on 64-bit builds; arch_t an enum).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <blis-openmp/cblas.h>

extern void bli_thread_set_num_threads(int64_t value);
extern char *bli_info_get_version_str(void);
extern int bli_arch_query_id(void);
extern char *bli_arch_string(int id);

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
