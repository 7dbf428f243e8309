// OpenBLAS through its CBLAS interface. Every matrix multiply in SwiftGPT
// goes through cblas_sgemm; openblas_set_num_threads is the thread knob.
#pragma once
#include <cblas.h>
