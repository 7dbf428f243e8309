// Open MPI's handles are macros over addresses of global objects
// (`#define MPI_COMM_WORLD OMPI_PREDEFINED_GLOBAL(...)`), which Swift cannot
// import. Each getter below exists only to hand one of them to Swift.
#pragma once
#include <mpi.h>

static inline MPI_Comm swiftgpt_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype swiftgpt_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype swiftgpt_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype swiftgpt_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype swiftgpt_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype swiftgpt_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype swiftgpt_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op swiftgpt_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op swiftgpt_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op swiftgpt_mpi_min(void) { return MPI_MIN; }
static inline void *swiftgpt_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request swiftgpt_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *swiftgpt_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *swiftgpt_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Errhandler swiftgpt_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int swiftgpt_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int swiftgpt_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline MPI_Comm swiftgpt_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Info swiftgpt_mpi_info_null(void) { return MPI_INFO_NULL; }
// MPI_COMM_TYPE_SHARED is an enumerator in Open MPI but a macro in other MPIs.
static inline int swiftgpt_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
// Sizes of the character buffers MPI_Error_string and MPI_Get_processor_name fill.
static inline int swiftgpt_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int swiftgpt_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
