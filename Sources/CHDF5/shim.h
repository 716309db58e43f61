// HDF5's type and property identifiers are macros over globals that must be initialised by
// H5open(); Swift cannot import them, so each becomes a tiny inline function here.
#ifndef DPFT_CHDF5_SHIM_H
#define DPFT_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t dpft_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t dpft_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t dpft_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t dpft_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t dpft_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t dpft_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t dpft_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t dpft_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline unsigned dpft_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned dpft_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline size_t dpft_h5t_variable(void) { return H5T_VARIABLE; }

/// Silences HDF5's default error printing to stderr; dpft reports errors itself.
static inline void dpft_h5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
#endif
