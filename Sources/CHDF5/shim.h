// HDF5's type and property identifiers are macros that call H5open() and
// read a global (`#define H5T_NATIVE_FLOAT (H5OPEN H5T_NATIVE_FLOAT_g)`), and
// the file-access flags are macros too; Swift imports none of them. Each
// getter below exists only to hand one of them to Swift.
#pragma once
#include <hdf5.h>

static inline hid_t swiftgpt_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t swiftgpt_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t swiftgpt_h5t_native_int8(void) { return H5T_NATIVE_INT8; }
static inline hid_t swiftgpt_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t swiftgpt_h5t_native_uint16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t swiftgpt_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t swiftgpt_h5t_native_uint32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t swiftgpt_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t swiftgpt_h5t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t swiftgpt_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t swiftgpt_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t swiftgpt_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t swiftgpt_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t swiftgpt_h5p_dataset_access(void) { return H5P_DATASET_ACCESS; }
static inline hid_t swiftgpt_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t swiftgpt_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t swiftgpt_h5s_all(void) { return H5S_ALL; }
static inline unsigned swiftgpt_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned swiftgpt_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline unsigned swiftgpt_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned swiftgpt_h5f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline hsize_t swiftgpt_h5s_unlimited(void) { return H5S_UNLIMITED; }
static inline size_t swiftgpt_h5t_variable(void) { return H5T_VARIABLE; }

/// Silences HDF5's default error printer: we turn failures into Swift errors.
static inline void swiftgpt_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
