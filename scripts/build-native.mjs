#!/usr/bin/env node
// Builds the native GPT-2 engine (native/) into native/build/Release/gpt2_native.node. `npm ci` runs it.
//
// It never fails the install: whatever happens, it exits 0 and records the outcome in native/build/status.json,
// which the engine loader (src/node/native/addon.ts) reports in `gpt2-studio engines` and Settings. Without the
// addon the studio runs on the tfjs engine.
//
// Steps: probe the C++ compiler, OpenMP, -march, a BLAS (OpenBLAS through pkg-config, Accelerate on macOS) and MPI
// (the flags of mpicc: Open MPI's --showme, MPICH's -show), each with a tiny test program; run node-gyp with what was found; load the addon in a child process and run a
// tiny model; probe CUDA (nvcc, cuBLAS, and NCCL for data parallel over GPUs) and record why the CUDA engine is or is
// not built, and whether it has NCCL (status.cuda.nccl, with status.cuda.ncclReason).
//
// Options:  --strict   exit 1 when the build fails (for by-hand builds)
//           --test     also build and run the C test harnesses (native/test)
//           --check    build nothing: exit 1 unless the last build succeeded (for CI, after npm ci)
// Environment:
//   GPT2_STUDIO_SKIP_NATIVE=1        skip the build (recorded as the reason)
//   GPT2_STUDIO_NATIVE_BLAS=0        build without BLAS (the built-in SGEMM only)
//   GPT2_STUDIO_NATIVE_MARCH=...     the -march value (default: native; "none" for no -march flag)
//   CXX                              the C++ compiler (default: c++)
//   GPT2_STUDIO_NCCL=0               build the CUDA engine without NCCL (data parallel over shared memory only)
//   GPT2_NATIVE_MPI=0                build the CPU engine without MPI (data parallel over shared memory only)
//   MPICC                            the MPI compiler wrapper whose flags are used (default: mpicc)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = path.join(root, 'native');
const buildDir = path.join(nativeDir, 'build');
const statusFile = path.join(buildDir, 'status.json');
const logFile = path.join(buildDir, 'build.log');
const strict = process.argv.includes('--strict');
const runTests = process.argv.includes('--test');

// what both engines link from native/common: the shared-memory communicator and the host-side layout
const commonSources = ['comm_shm.cpp', 'layout.cpp'].map((f) => path.join(nativeDir, 'common', f));

const log = [];
function say(msg) {
  log.push(msg);
  console.error(`[native] ${msg}`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return { ok: r.status === 0 && !r.error, status: r.status, out: r.error ? `${r.error.message}\n${out}` : out };
}

function firstLines(text, n = 6) {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .slice(0, n)
    .join('\n');
}

/** The first error lines of a compiler log (what a person needs to see). */
function compilerErrors(text) {
  const errs = text.split('\n').filter((l) => /error:|Error:|ERR! stack Error|undefined reference|not found/.test(l));
  return (
    errs.length
      ? errs
      : text
          .split('\n')
          .filter((l) => l.trim())
          .slice(-6)
  )
    .slice(0, 6)
    .join('\n');
}

if (process.argv.includes('--check')) {
  let st = null;
  try {
    st = JSON.parse(readFileSync(statusFile, 'utf8'));
  } catch {
    // no status: never built
  }
  const addonFile = path.join(buildDir, 'Release', 'gpt2_native.node');
  if (st?.ok && existsSync(addonFile)) {
    console.error(`[native] built: ${st.buildInfo}`);
    process.exit(0);
  }
  console.error(
    `[native] not built: ${st ? st.reason : `no ${path.relative(root, statusFile)} (the install script did not run)`}`,
  );
  process.exit(1);
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpt2-native-probe-'));
const cxx = process.env.CXX || 'c++';

/** Compiles and runs a probe program; returns {ok, out}. */
function probe(name, source, flags, libs = []) {
  const src = path.join(tmp, `${name}.cpp`);
  const exe = path.join(tmp, name);
  writeFileSync(src, source);
  const c = run(cxx, ['-std=c++17', ...flags, src, '-o', exe, ...libs]);
  if (!c.ok) return { ok: false, out: c.out };
  const r = run(exe, []);
  return { ok: r.ok, out: r.out };
}

function pkgConfig(pkg) {
  const c = run('pkg-config', ['--cflags', pkg]);
  const l = run('pkg-config', ['--libs', pkg]);
  if (!c.ok || !l.ok) return null;
  return { cflags: c.out.trim().split(/\s+/).filter(Boolean), libs: l.out.trim().split(/\s+/).filter(Boolean) };
}

function writeStatus(status) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(
    statusFile,
    JSON.stringify(
      {
        ...status,
        when: new Date().toISOString(),
        node: process.version,
        platform: process.platform,
        arch: process.arch,
      },
      null,
      2,
    ) + '\n',
  );
  writeFileSync(logFile, log.join('\n') + '\n');
}

function finish(status) {
  rmSync(tmp, { recursive: true, force: true });
  writeStatus(status);
  if (status.ok) say(`built: ${status.buildInfo}`);
  else
    say(
      `not built: ${status.reason}\n[native] the studio still works on the tfjs engine; details in ${path.relative(root, logFile)}`,
    );
  process.exit(!status.ok && strict ? 1 : 0);
}

// ---- CUDA: detect, and say why not --------------------------------------------------------------------------------

/** The folder of a Python package (also a namespace package, as the nvidia-* wheels are), or null. */
function wheelDir(pkg) {
  const py = run('python3', ['-c', `import ${pkg} as m; print(list(m.__path__)[0])`]);
  return py.ok && py.out.trim() ? py.out.trim().split('\n').pop() : null;
}

/**
 * NCCL for the CUDA engine's data parallel: nccl.h and libnccl.so(.2) in the CUDA home, the system (libnccl-dev), or a
 * Python nvidia-nccl wheel. Returns {nccl, ncclReason, ncclInclude?, ncclLib?, ncclSoname?}.
 */
function detectNccl(cudaHome) {
  if (process.env.GPT2_STUDIO_NCCL === '0')
    return { nccl: false, ncclReason: 'disabled by GPT2_STUDIO_NCCL=0; data parallel over shared memory only' };
  const dirs = [cudaHome, '/usr'];
  const wheel = wheelDir('nvidia.nccl');
  if (wheel) dirs.push(wheel);
  const libDirs = (d) =>
    [
      'lib64',
      'lib',
      path.join('lib', 'x86_64-linux-gnu'),
      path.join('lib', 'aarch64-linux-gnu'),
      path.join('targets', 'x86_64-linux', 'lib'),
    ].map((l) => path.join(d, l));
  for (const d of dirs) {
    const inc = [path.join(d, 'include'), path.join(d, 'targets', 'x86_64-linux', 'include')].find((i) =>
      existsSync(path.join(i, 'nccl.h')),
    );
    if (!inc) continue;
    for (const l of libDirs(d)) {
      const soname = ['libnccl.so', 'libnccl.so.2'].find((f) => existsSync(path.join(l, f)));
      if (soname) return { nccl: true, ncclReason: `NCCL in ${l}`, ncclInclude: inc, ncclLib: l, ncclSoname: soname };
    }
  }
  return {
    nccl: false,
    ncclReason: `no nccl.h and libnccl.so under ${[...new Set(dirs)].join(', ')}; data parallel over shared memory only (install libnccl-dev or the nvidia-nccl wheel for NCCL)`,
  };
}

function detectCuda() {
  const homes = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter(Boolean);
  let nvcc = null;
  for (const h of homes) if (existsSync(path.join(h, 'bin', 'nvcc'))) nvcc = path.join(h, 'bin', 'nvcc');
  if (!nvcc) {
    const w = run('sh', ['-c', 'command -v nvcc']);
    if (w.ok && w.out.trim()) nvcc = w.out.trim();
  }
  if (!nvcc) return { available: false, reason: 'nvcc not found (set CUDA_HOME to a CUDA toolkit)' };
  // cuBLAS: the toolkit's own, or the headers and libraries of a Python nvidia-cublas wheel
  const home = path.resolve(path.dirname(nvcc), '..');
  const dirs = [...homes, home];
  const py = wheelDir('nvidia.cublas');
  if (py) dirs.push(py);
  for (const d of dirs) {
    const inc = [
      path.join(d, 'include', 'cublas_v2.h'),
      path.join(d, 'targets', 'x86_64-linux', 'include', 'cublas_v2.h'),
    ].find(existsSync);
    const lib = ['lib64', 'lib', path.join('targets', 'x86_64-linux', 'lib')]
      .map((l) => path.join(d, l))
      .find(
        (l) =>
          existsSync(path.join(l, 'libcublas.so')) ||
          existsSync(path.join(l, 'libcublas.so.12')) ||
          existsSync(path.join(l, 'libcublas.so.13')),
      );
    if (inc && lib)
      return { available: true, nvcc, cublasInclude: path.dirname(inc), cublasLib: lib, ...detectNccl(home) };
  }
  return {
    available: false,
    nvcc,
    reason: `nvcc is at ${nvcc}, but cuBLAS is not (no cublas_v2.h and libcublas.so under ${[...new Set(dirs)].join(', ')}); install the CUDA toolkit's cuBLAS or the nvidia-cublas wheel`,
  };
}

// ---- main ---------------------------------------------------------------------------------------------------------

if (process.env.GPT2_STUDIO_SKIP_NATIVE === '1') finish({ ok: false, reason: 'skipped: GPT2_STUDIO_SKIP_NATIVE=1' });
if (process.platform === 'win32') {
  finish({
    ok: false,
    reason:
      'the native engine builds with GCC or Clang on Linux and macOS; on Windows, use WSL (the tfjs engine works here)',
  });
}

const status = { ok: false, compiler: null, openmp: false, march: null, blas: null, cuda: detectCuda() };
say(
  `CUDA: ${status.cuda.available ? `nvcc ${status.cuda.nvcc}, cuBLAS in ${status.cuda.cublasLib}; NCCL: ${status.cuda.nccl ? 'yes' : 'no'} (${status.cuda.ncclReason})` : status.cuda.reason}`,
);

// compiler
const ver = run(cxx, ['--version']);
if (!ver.ok)
  finish({ ...status, reason: `no C++ compiler: "${cxx} --version" failed (install g++ or clang, or set CXX)` });
status.compiler = firstLines(ver.out, 1);
say(`compiler: ${status.compiler}`);
const hello = probe('hello', 'int main() { return 0; }\n', []);
if (!hello.ok) finish({ ...status, reason: `the C++ compiler cannot build a program: ${compilerErrors(hello.out)}` });

// OpenMP
const ompSrc =
  '#include <omp.h>\nint main() { int n = 0;\n#pragma omp parallel reduction(+:n)\n n += 1;\n return n >= 1 ? 0 : 1; }\n';
const ompCandidates =
  process.platform === 'darwin'
    ? [
        {
          cflags: [
            '-Xpreprocessor',
            '-fopenmp',
            '-I/opt/homebrew/opt/libomp/include',
            '-I/usr/local/opt/libomp/include',
          ],
          libs: ['-L/opt/homebrew/opt/libomp/lib', '-L/usr/local/opt/libomp/lib', '-lomp'],
        },
        { cflags: ['-fopenmp'], libs: ['-fopenmp'] },
      ]
    : [{ cflags: ['-fopenmp'], libs: ['-fopenmp'] }];
let omp = null;
for (const c of ompCandidates) {
  if (probe('omp', ompSrc, c.cflags, c.libs).ok) {
    omp = c;
    break;
  }
}
status.openmp = !!omp;
say(
  omp
    ? `OpenMP: ${omp.cflags.join(' ')}`
    : 'OpenMP: not found; the engine will run on one thread (install libgomp / libomp)',
);

// -march
const marchWant = process.env.GPT2_STUDIO_NATIVE_MARCH ?? 'native';
let marchFlags = [];
if (marchWant !== 'none') {
  const flag =
    process.arch === 'arm64' && process.platform === 'darwin'
      ? `-mcpu=${marchWant === 'native' ? 'native' : marchWant}`
      : `-march=${marchWant}`;
  if (probe('march', 'int main() { return 0; }\n', [flag]).ok) marchFlags = [flag];
  else say(`${flag} is not accepted by the compiler; building for the default target`);
}
status.march = marchFlags.join(' ') || 'default';

// BLAS
const blasSrc = `#include <cblas.h>
int main() { float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {0, 0, 0, 0};
#ifdef GPT2_OPENBLAS
  openblas_set_num_threads(1);
#endif
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.f, a, 2, b, 2, 0.f, c, 2);
  return c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4 ? 0 : 1; }
`;
let blas = null;
if (process.env.GPT2_STUDIO_NATIVE_BLAS === '0') {
  say('BLAS: disabled by GPT2_STUDIO_NATIVE_BLAS=0; the built-in SGEMM is used');
} else {
  const candidates = [];
  if (process.platform === 'darwin') {
    candidates.push({
      name: 'Accelerate',
      cflags: ['-DACCELERATE_NEW_LAPACK'],
      libs: ['-framework', 'Accelerate'],
      defines: ['GPT2_USE_BLAS'],
      src: blasSrc.replace('<cblas.h>', '<Accelerate/Accelerate.h>'),
    });
  }
  const ob = pkgConfig('openblas');
  if (ob) candidates.push({ name: 'OpenBLAS (pkg-config)', ...ob, defines: ['GPT2_USE_BLAS', 'GPT2_OPENBLAS'] });
  candidates.push({
    name: 'OpenBLAS (-lopenblas)',
    cflags: ['-I/usr/include/openblas'],
    libs: ['-lopenblas'],
    defines: ['GPT2_USE_BLAS', 'GPT2_OPENBLAS'],
  });
  const notes = [];
  for (const c of candidates) {
    const r = probe('blas', c.src ?? blasSrc, [...c.cflags, ...c.defines.map((d) => `-D${d}`)], c.libs);
    if (r.ok) {
      blas = c;
      break;
    }
    notes.push(`${c.name}: ${compilerErrors(r.out).split('\n')[0]}`);
  }
  if (!ob) notes.unshift('pkg-config openblas: not found');
  say(
    blas
      ? `BLAS: ${blas.name} ${blas.libs.join(' ')}`
      : `BLAS: none found (${notes.join('; ')}); the built-in SGEMM is used. Install libopenblas-dev for BLAS.`,
  );
}
status.blas = blas ? blas.name : null;

// MPI: data parallel of the CPU engine across machines (native/common/comm_mpi.cpp, "mpi:" communicator ids). The
// wrapper compiler says which flags its MPI needs; the probe compiles and runs a program that only asks the library's
// version (allowed before MPI_Init, so it needs no launcher).
const mpiSrc = `#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <stdio.h>
int main() { char v[MPI_MAX_LIBRARY_VERSION_STRING]; int n = 0;
  if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) return 1;
  printf("%.*s\\n", n, v); return 0; }
`;
/** mpicc's compile and link flags: Open MPI's --showme:compile / --showme:link, else MPICH's -show. */
function mpiWrapperFlags(mpicc) {
  const words = (text) => text.trim().split(/\s+/).filter(Boolean);
  const c = run(mpicc, ['--showme:compile']);
  const l = run(mpicc, ['--showme:link']);
  if (c.ok && l.ok) return { how: `${mpicc} --showme`, cflags: words(c.out), libs: words(l.out) };
  const s = run(mpicc, ['-show']);
  if (s.ok) {
    // "cc -I... -L... -lmpich ...": the compiler first, then its flags
    const all = words(s.out).slice(1);
    return {
      how: `${mpicc} -show`,
      cflags: all.filter((w) => /^-(I|D|pthread$)/.test(w)),
      libs: all.filter((w) => /^-(L|l|Wl,|pthread$)/.test(w)),
    };
  }
  return null;
}
let mpi = null;
if (process.env.GPT2_NATIVE_MPI === '0') {
  say('MPI: disabled by GPT2_NATIVE_MPI=0; data parallel over shared memory only');
  status.mpiReason = 'disabled by GPT2_NATIVE_MPI=0';
} else {
  const mpicc = process.env.MPICC || 'mpicc';
  const flags = mpiWrapperFlags(mpicc);
  if (!flags) {
    status.mpiReason = `${mpicc} not found (install libopenmpi-dev and openmpi-bin for data parallel across machines)`;
    say(`MPI: ${status.mpiReason}`);
  } else {
    // the addon finds libmpi where the wrapper links it from, also outside the loader's default paths
    const rpaths = flags.libs.filter((w) => w.startsWith('-L')).map((w) => `-Wl,-rpath,${w.slice(2)}`);
    const cand = { cflags: flags.cflags, libs: [...flags.libs, ...rpaths] };
    const r = probe('mpi', mpiSrc, cand.cflags, cand.libs);
    if (r.ok) {
      const line = r.out.trim().split('\n')[0] ?? '';
      mpi = { ...cand, version: line };
      say(`MPI: ${line} (${flags.how}: ${[...cand.cflags, ...cand.libs].join(' ')})`);
    } else {
      status.mpiReason = `${flags.how} gave flags that do not build a program: ${compilerErrors(r.out).split('\n')[0]}`;
      say(`MPI: ${status.mpiReason}; building without MPI`);
    }
  }
}
status.mpi = mpi ? mpi.version : null;

// node-gyp
function findNodeGyp() {
  const cands = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath &&
      path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter(Boolean);
  for (const c of cands) if (existsSync(c)) return c;
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}
const nodeGyp = findNodeGyp();
if (!nodeGyp)
  finish({ ...status, reason: 'node-gyp not found (it ships with npm; reinstall npm, or npm i -g node-gyp)' });

const cflags = [...(omp?.cflags ?? []), ...marchFlags, ...(blas?.cflags ?? []), ...(mpi?.cflags ?? [])];
const libs = [...(omp?.libs ?? []), ...(blas?.libs ?? []), ...(mpi?.libs ?? [])];
const defines = [...(blas?.defines ?? []), ...(mpi ? ['GPT2_USE_MPI'] : [])];
const env = {
  ...process.env,
  GPT2_NATIVE_CFLAGS: cflags.join(' '),
  GPT2_NATIVE_LIBS: libs.join(' '),
  GPT2_NATIVE_DEFINES: defines.join(' '),
};
say(
  `node-gyp rebuild (cflags: ${env.GPT2_NATIVE_CFLAGS || '-'}; libs: ${env.GPT2_NATIVE_LIBS || '-'}; defines: ${env.GPT2_NATIVE_DEFINES || '-'})`,
);
// Node's own headers when they sit beside this node (a distribution or a Debian /usr), so no download is needed;
// npm passes its configured nodedir through npm_config_nodedir, which node-gyp reads itself.
const gypArgs = [nodeGyp, 'rebuild', '--release', `--jobs=${Math.max(1, Math.min(4, os.cpus().length))}`];
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h')))
  gypArgs.push(`--nodedir=${prefix}`);
const gyp = run(process.execPath, gypArgs, { cwd: nativeDir, env });
log.push(gyp.out);
if (!gyp.ok) finish({ ...status, reason: `the compile failed: ${compilerErrors(gyp.out)}` });

// load it in a child process and run a tiny model, so a broken binary is caught here and not in the app
const addon = path.join(buildDir, 'Release', 'gpt2_native.node');
const smoke = `
const a = require(${JSON.stringify(addon)});
const m = new a.Model({ numLayers: 1, numHeads: 2, channels: 8, maxSeqLen: 4, vocabSize: 10, paddedVocabSize: 16, lnEps: 1e-5 });
m.write(0, 0, new Float32Array(m.tensorNumel(0)).fill(0.01));
const out = new Float32Array(2 * 10);
m.logits(new Int32Array([1, 2]), 1, 2, out).then(() => {
  if (!out.every(Number.isFinite)) throw new Error('non-finite logits');
  console.log(JSON.stringify({ buildInfo: a.buildInfo(), apiVersion: a.apiVersion, mpi: a.mpiInfo().available }));
});`;
const s = run(process.execPath, ['-e', smoke]);
log.push(s.out);
if (!s.ok) finish({ ...status, reason: `the addon was built but does not load or run: ${firstLines(s.out, 3)}` });
const info = JSON.parse(s.out.trim().split('\n').pop());

if (runTests) {
  const exe = path.join(buildDir, 'test_gemm');
  const flags = [
    '-std=c++17',
    '-O3',
    '-ffp-contract=fast',
    '-fno-math-errno',
    ...cflags,
    ...defines.map((d) => `-D${d}`),
  ];
  const c = run(cxx, [
    ...flags,
    path.join(nativeDir, 'test', 'test_gemm.cpp'),
    path.join(nativeDir, 'cpu', 'gemm.cpp'),
    '-o',
    exe,
    ...libs,
  ]);
  log.push(c.out);
  if (!c.ok) finish({ ...status, reason: `the C test harness does not compile: ${compilerErrors(c.out)}` });
  const t = run(exe, []);
  say(t.out.trim());
  if (!t.ok) finish({ ...status, reason: 'the C GEMM test failed (see the log)' });
  // the engine as a plain shared library, and the Node-free parity harness: BLAS against the built-in SGEMM
  const lib = path.join(buildDir, 'libgpt2_cpu.so');
  const cpuSources = ['model.cpp', 'layers.cpp', 'gemm.cpp'].map((f) => path.join(nativeDir, 'cpu', f));
  const l = run(cxx, [
    ...flags,
    '-fPIC',
    '-shared',
    ...cpuSources,
    ...commonSources,
    path.join(nativeDir, 'common', 'comm_mpi.cpp'),
    '-o',
    lib,
    '-Wl,-Bsymbolic',
    ...libs,
    '-lrt',
  ]);
  log.push(l.out);
  if (!l.ok) finish({ ...status, reason: `libgpt2_cpu.so does not build: ${compilerErrors(l.out)}` });
  const harness = path.join(buildDir, 'test_parity');
  const h = run(process.env.CC || 'cc', [
    '-O2',
    path.join(nativeDir, 'test', 'test_parity.c'),
    '-o',
    harness,
    '-ldl',
    '-lm',
  ]);
  log.push(h.out);
  if (!h.ok) finish({ ...status, reason: `the parity harness does not compile: ${compilerErrors(h.out)}` });
  const p = run(harness, [lib, lib, ...(blas ? ['--b-builtin'] : [])], {
    env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' },
  });
  say(p.out.trim().split('\n').pop());
  log.push(p.out);
  if (!p.ok) finish({ ...status, reason: 'the C parity harness failed (see the log)' });
}

// CUDA: the engine as a shared library with the same C API, when nvcc and cuBLAS are there. The addon loads it at
// run time as the native-cuda engine (src/node/native); native/test/test_parity.c checks it against the CPU library
// on a GPU box without Node.
if (status.cuda.available) {
  const cudaLib = path.join(buildDir, 'libgpt2_cuda.so');
  const gpu = run('nvidia-smi', ['-L']);
  const arch = process.env.GPT2_STUDIO_CUDA_ARCH ?? (gpu.ok ? 'native' : 'all-major');
  // NCCL: -lnccl needs a libnccl.so; a wheel ships only libnccl.so.2, linked by its full path instead
  const ncclFlags = status.cuda.nccl
    ? [
        '-DGPT2_USE_NCCL',
        `-I${status.cuda.ncclInclude}`,
        `-Xlinker=-rpath,${status.cuda.ncclLib}`,
        ...(status.cuda.ncclSoname === 'libnccl.so'
          ? [`-L${status.cuda.ncclLib}`, '-lnccl']
          : [path.join(status.cuda.ncclLib, status.cuda.ncclSoname)]),
      ]
    : [];
  say(
    `CUDA: building ${path.relative(root, cudaLib)} (-arch=${arch}, ${status.cuda.nccl ? 'with NCCL' : 'without NCCL'})`,
  );
  // native/common is compiled in (the shared-memory communicator: the "shm:" data parallel of every build; the
  // host-side layout); gpt2_cuda.cu includes the engine's other files (native/cuda/*.cuh). -Bsymbolic keeps the
  // library's own symbols bound to itself when it is loaded into a process that has the CPU engine's same names
  const cudaArgs = (withNccl) => [
    '-std=c++17',
    '-O3',
    `-arch=${arch}`,
    '-shared',
    '-Xcompiler',
    '-fPIC',
    `-I${status.cuda.cublasInclude}`,
    path.join(nativeDir, 'cuda', 'gpt2_cuda.cu'),
    ...commonSources,
    '-o',
    cudaLib,
    ...(withNccl ? ncclFlags : []),
    `-L${status.cuda.cublasLib}`,
    `-Xlinker=-rpath,${status.cuda.cublasLib}`,
    '-Xlinker',
    '-Bsymbolic',
    '-lcublas',
    '-lrt',
  ];
  let c = run(status.cuda.nvcc, cudaArgs(status.cuda.nccl));
  if (!c.ok && status.cuda.nccl) {
    // an NCCL that does not build or link (e.g. too old for ncclCommInitRankConfig): the engine without it
    log.push(c.out);
    const why = compilerErrors(c.out).split('\n')[0];
    say(`CUDA: the build with NCCL failed (${why}); building without NCCL`);
    status.cuda = {
      ...status.cuda,
      nccl: false,
      ncclReason: `NCCL was found in ${status.cuda.ncclLib}, but the build with it failed: ${why}`,
    };
    c = run(status.cuda.nvcc, cudaArgs(false));
  }
  log.push(c.out);
  if (c.ok) {
    status.cuda = { ...status.cuda, library: path.relative(root, cudaLib), reason: undefined }; // the addon loads it as the native-cuda engine
    say(
      'CUDA: built; check it with native/build/test_parity native/build/libgpt2_cpu.so native/build/libgpt2_cuda.so (node scripts/build-native.mjs --test builds both)',
    );
  } else {
    status.cuda = {
      ...status.cuda,
      available: false,
      reason: `nvcc failed on native/cuda/gpt2_cuda.cu: ${compilerErrors(c.out)}`,
    };
    say(`CUDA: ${status.cuda.reason}`);
  }
}

finish({
  ...status,
  ok: true,
  reason: null,
  addon: path.relative(root, addon),
  apiVersion: info.apiVersion,
  buildInfo: info.buildInfo,
});
