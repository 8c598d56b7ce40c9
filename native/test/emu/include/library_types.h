// CPU emulation of the CUDA toolkit for tests (see ../README.md): the data types of cuBLAS's GemmEx.
#ifndef GPT2_EMU_LIBRARY_TYPES_H
#define GPT2_EMU_LIBRARY_TYPES_H
typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;
#endif
