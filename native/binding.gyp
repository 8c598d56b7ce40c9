# The Node addon of the native GPT-2 engine. Build it with `node scripts/build-native.mjs` (run by `npm ci`),
# which probes the compiler, OpenMP and BLAS and passes what it found in these environment variables:
#   GPT2_NATIVE_CFLAGS   compiler flags (e.g. -fopenmp -march=native, the BLAS include path)
#   GPT2_NATIVE_DEFINES  GPT2_USE_BLAS, GPT2_OPENBLAS, GPT2_USE_MPI
#   GPT2_NATIVE_LIBS     link flags (e.g. -fopenmp -lopenblas, and mpicc's -L... -lmpi)
# Run by hand (`node-gyp rebuild` in native/), it builds without OpenMP or BLAS: slow but correct.
{
  'targets': [
    {
      'target_name': 'gpt2_native',
      'sources': ['node/binding.cpp', 'cpu/model.cpp', 'cpu/layers.cpp', 'cpu/gemm.cpp', 'common/comm_shm.cpp', 'common/comm_mpi.cpp',
                  'common/layout.cpp'],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")", 'include'],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', '<!@(node -p "process.env.GPT2_NATIVE_DEFINES || \'\'")'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti'],
      'cflags_cc': ['-O3', '-ffp-contract=fast', '-fno-math-errno', '-fexceptions',
                    '<!@(node -p "process.env.GPT2_NATIVE_CFLAGS || \'\'")'],
      'libraries': ['<!@(node -p "process.env.GPT2_NATIVE_LIBS || \'\'")'],
      'conditions': [
        ['OS=="linux"', {'libraries': ['-ldl', '-lrt']}],
        ['OS=="mac"', {
          'xcode_settings': {
            'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
            'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
            'MACOSX_DEPLOYMENT_TARGET': '11.0',
            'OTHER_CPLUSPLUSFLAGS': ['-O3', '-ffp-contract=fast', '-fno-math-errno',
                                     '<!@(node -p "process.env.GPT2_NATIVE_CFLAGS || \'\'")'],
            'OTHER_LDFLAGS': ['<!@(node -p "process.env.GPT2_NATIVE_LIBS || \'\'")'],
          },
        }],
      ],
    },
  ],
}
