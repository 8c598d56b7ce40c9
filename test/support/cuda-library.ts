/**
 * Runs fn with GPT2_STUDIO_CUDA_LIB pointing at `file` (the library the native-cuda engine loads), then puts the
 * variable back as it was.
 */
export async function withCudaLibrary<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env.GPT2_STUDIO_CUDA_LIB;
  process.env.GPT2_STUDIO_CUDA_LIB = file;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.GPT2_STUDIO_CUDA_LIB;
    else process.env.GPT2_STUDIO_CUDA_LIB = before;
  }
}
