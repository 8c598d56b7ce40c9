/**
 * Training workers under `mpirun -np 1`, for CPU ranks of a multi-node run that talk over MPI. Open MPI 4.1 lets
 * separately launched processes connect (MPI_Comm_connect / MPI_Comm_accept) only when each runs under mpirun and
 * they share one ompi-server: node 0 starts it (startOmpiServer) and every node runs each of its ranks as its own
 * `mpirun --ompi-server URI` job (mpirunWorkerSpawner).
 *
 * A worker under mpirun has no Node IPC channel to the studio, so the two talk over a Unix-domain socket in a
 * private temporary folder (mode 0700): newline-delimited JSON, ParentMessage one way and WorkerMessage the other,
 * as the IPC channel carries them. The worker's first line is `{"hello":{"pid":N}}`, so that the studio can reach
 * the worker itself (mpirun cannot forward SIGKILL). The worker finds the socket in GPT2_STUDIO_WORKER_SOCKET
 * (worker-main.ts; connectParentSocket below).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, StudioError } from '../../shared/errors';
import type { WorkerHandle, WorkerSpawner } from './launcher';
import type { ParentMessage, WorkerMessage } from './protocol';

/** The variable that tells a worker to use the socket transport, and where the socket is. */
export const WORKER_SOCKET_ENV = 'GPT2_STUDIO_WORKER_SOCKET';
/** After mpirun has exited, how long the worker's socket may stay open before the worker is killed. */
const AFTER_MPIRUN_MS = 3_000;
/** A worker message longer than this (a broken worker) ends the connection. */
const MAX_WORKER_LINE = 64 * 1024 * 1024;

const INSTALL_HINT =
  'Install Open MPI: apt-get install openmpi-bin (Debian, Ubuntu), dnf install openmpi (Fedora; then module load mpi), or brew install open-mpi (macOS).';

/** The first executable called `name` on PATH (or `name` itself when it is a path), or null. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates = name.includes('/')
    ? [name]
    : (env.PATH ?? '')
        .split(path.delimiter)
        .filter(Boolean)
        .map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      if (fs.statSync(c).isFile()) return c;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The environment of an mpirun (or ompi-server) this process starts. What an outer launcher put in this process's
 * environment is left out: Open MPI refuses a nested mpirun that inherits its parent job's variables ("mpirun does
 * not support recursive calls"), PMI and PMIx variables would point the new job at the outer one, and Slurm's
 * would make mpirun place the worker through srun on the allocation's first node instead of this host. Settings a
 * person gives (OMPI_MCA_btl_tcp_if_include, PMIX_MCA_*) are kept. Open MPI runs as root only when told to.
 */
export function mpirunEnv(base: NodeJS.ProcessEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) {
    if (v === undefined || isLauncherVar(k)) continue;
    env[k] = v;
  }
  env.OMPI_ALLOW_RUN_AS_ROOT = '1';
  env.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = '1';
  // the built app's process.execPath is Electron, which runs a script as Node only when told to
  if (process.versions.electron) env.ELECTRON_RUN_AS_NODE = '1';
  return { ...env, ...extra };
}

function isLauncherVar(k: string): boolean {
  if (k.startsWith('OMPI_ALLOW_RUN_AS_ROOT')) return false;
  // the MCA parameters mpirun sets for the processes of its job (a person's own OMPI_MCA_* settings stay)
  if (k.startsWith('OMPI_MCA_')) return /^OMPI_MCA_(orte_|ess|pmix|initial_wdir|shmem_RUNTIME_QUERY_hint)/.test(k);
  if (k.startsWith('OMPI_')) return true;
  if (k.startsWith('PMIX_') || k.startsWith('PRTE_')) return !/^(PMIX|PRTE)_MCA_/.test(k);
  if (k.startsWith('PMI_') || k === 'MPI_LOCALRANKID' || k === 'MPI_LOCALNRANKS') return true;
  if (k.startsWith('SLURM_') || k.startsWith('SLURMD_')) return true;
  return k === 'GPT2_STUDIO_WORKER_SOCKET';
}

// ---- ompi-server ----

export interface OmpiServer {
  /** what every mpirun of the run passes as --ompi-server */
  uri: string;
  /** ends the server (idempotent); it also ends when this process exits */
  stop(): void;
}

/**
 * Starts Open MPI's ompi-server, which lets separately launched MPI jobs find each other, and waits for its URI
 * (written to DIR/ompi-server.uri). A missing binary, or a server that ends or stays silent, is a StudioError.
 */
export async function startOmpiServer(
  dir: string,
  opts: { timeoutMs?: number; bin?: string } = {},
): Promise<OmpiServer> {
  const bin = opts.bin ?? 'ompi-server';
  const timeoutMs = opts.timeoutMs ?? 15_000;
  if (!findOnPath(bin))
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `Open MPI's ompi-server is not installed (no ${bin} on PATH); a multi-node run of CPU ranks needs it.`,
      INSTALL_HINT,
    );
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'ompi-server.uri');
  // a URI left by an earlier server would be read as this one's
  fs.rmSync(file, { force: true });
  const child = spawn(bin, ['--no-daemonize', '--report-uri', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: mpirunEnv(process.env),
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stop);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    fs.rmSync(file, { force: true });
  };
  // the server must not outlive the studio, nor keep it running
  process.once('exit', stop);
  child.unref();
  (child.stderr as unknown as { unref?: () => void }).unref?.();

  try {
    const uri = await new Promise<string>((resolve, reject) => {
      let done = false;
      const finish = (e: Error | null, v?: string) => {
        if (done) return;
        done = true;
        clearInterval(poll);
        clearTimeout(timer);
        if (e) reject(e);
        else resolve(v!);
      };
      child.once('error', (e) =>
        finish(
          new StudioError(
            ErrorCode.ENGINE_UNAVAILABLE,
            `Open MPI's ompi-server could not start: ${e.message}.`,
            INSTALL_HINT,
          ),
        ),
      );
      child.once('exit', (code, signal) =>
        finish(
          new StudioError(
            ErrorCode.ENGINE_UNAVAILABLE,
            `Open MPI's ompi-server ended before it reported its URI (${signal ?? `exit code ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}.`,
            'Check that Open MPI works on this machine: mpirun -np 1 hostname.',
          ),
        ),
      );
      // the file is complete once its line ends
      const poll = setInterval(() => {
        let text: string;
        try {
          text = fs.readFileSync(file, 'utf8');
        } catch {
          return;
        }
        if (text.endsWith('\n') && text.trim()) finish(null, text.trim());
      }, 25);
      const timer = setTimeout(
        () =>
          finish(
            new StudioError(
              ErrorCode.ENGINE_UNAVAILABLE,
              `Open MPI's ompi-server wrote no URI to ${file} within ${Math.round(timeoutMs / 1000)} s.`,
              'Check that Open MPI works on this machine: mpirun -np 1 hostname.',
            ),
          ),
        timeoutMs,
      );
    });
    return { uri, stop };
  } catch (e) {
    stop();
    throw e;
  }
}

// ---- the studio's side: a worker under mpirun ----

export interface MpirunSpawnerOptions {
  /** ompi-server's URI (startOmpiServer) */
  ompiServerUri: string;
  /** more environment for the worker (forwarded with -x as well) */
  env?: Record<string, string>;
  /** the mpirun to run (default: mpirun on PATH) */
  mpirun?: string;
}

/**
 * A spawner of training workers, each under its own `mpirun -np 1 --ompi-server URI`, that speaks to it over a
 * Unix-domain socket. Throws a StudioError at once when mpirun is not installed.
 */
export function mpirunWorkerSpawner(entry: string, opts: MpirunSpawnerOptions): WorkerSpawner {
  const mpirun = findOnPath(opts.mpirun ?? 'mpirun');
  if (!mpirun)
    throw new StudioError(
      ErrorCode.ENGINE_UNAVAILABLE,
      `Open MPI's mpirun is not installed (no ${opts.mpirun ?? 'mpirun'} on PATH); CPU ranks on several machines run under it.`,
      INSTALL_HINT,
    );
  return () => spawnUnderMpirun(mpirun, entry, opts);
}

/** The arguments of mpirun for one worker. */
export function mpirunArgs(entry: string, socketPath: string, opts: MpirunSpawnerOptions): string[] {
  const forward = Object.keys(opts.env ?? {})
    .filter((k) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
    .flatMap((k) => ['-x', k]);
  return [
    '--allow-run-as-root',
    '-np',
    '1',
    // mpirun binds a job of 1 or 2 processes to one core by default: the worker's threads need every core
    '--bind-to',
    'none',
    // the worker reads nothing from a terminal
    '--stdin',
    'none',
    '--ompi-server',
    opts.ompiServerUri,
    // a local launch inherits mpirun's environment; -x also carries these to a worker mpirun would start elsewhere
    '-x',
    `${WORKER_SOCKET_ENV}=${socketPath}`,
    ...forward,
    process.execPath,
    entry,
  ];
}

function spawnUnderMpirun(mpirun: string, entry: string, opts: MpirunSpawnerOptions): WorkerHandle {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-worker-'));
  const socketPath = path.join(dir, 'worker.sock');
  const server = net.createServer();
  // binding a Unix socket is synchronous: the path exists before mpirun starts
  server.listen(socketPath);
  server.on('error', () => {});

  const messageCbs: ((m: WorkerMessage) => void)[] = [];
  const exitCbs: ((code: number | null, signal: string | null) => void)[] = [];
  const queue: string[] = [];
  let sock: net.Socket | null = null;
  let sockClosed = false;
  let workerPid: number | null = null;
  let lastSeq = 0;
  let mpirunExit: { code: number | null; signal: string | null } | null = null;
  let killedWith: NodeJS.Signals | null = null;
  let exited = false;
  let graceTimer: NodeJS.Timeout | null = null;

  const emit = (m: WorkerMessage) => {
    lastSeq = Math.max(lastSeq, m.seq);
    for (const cb of messageCbs) cb(m);
  };
  const stopListening = () => {
    if (server.listening) server.close();
  };
  const killWorker = () => {
    // the pid is the worker's as long as its connection is open
    if (workerPid !== null && sock && !sockClosed) {
      try {
        process.kill(workerPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const maybeExit = () => {
    if (exited || !mpirunExit) return;
    // every message the worker wrote is read before the exit is reported
    if (sock && !sockClosed) {
      graceTimer ??= setTimeout(() => {
        killWorker();
        sock?.destroy();
      }, AFTER_MPIRUN_MS);
      return;
    }
    exited = true;
    if (graceTimer) clearTimeout(graceTimer);
    stopListening();
    fs.rmSync(dir, { recursive: true, force: true });
    // mpirun exits with 1 after forwarding a signal: report the signal, as a forked worker's exit would
    const e = mpirunExit;
    const out = killedWith && (e.code !== 0 || e.signal) ? { code: null, signal: killedWith } : e;
    for (const cb of exitCbs) cb(out.code, out.signal);
  };

  server.on('connection', (s) => {
    if (sock || exited) return void s.destroy();
    sock = s;
    // one worker per socket: nothing else may connect
    stopListening();
    s.setEncoding('utf8');
    let buf = '';
    let hello = false;
    s.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        let m: unknown;
        try {
          m = JSON.parse(line);
        } catch {
          continue;
        }
        if (!hello && m && typeof m === 'object' && 'hello' in m) {
          hello = true;
          const pid = (m as { hello: { pid?: unknown } }).hello.pid;
          if (typeof pid === 'number' && Number.isInteger(pid) && pid > 0) workerPid = pid;
          continue;
        }
        if (m && typeof m === 'object' && typeof (m as { type?: unknown }).type === 'string') emit(m as WorkerMessage);
      }
      if (buf.length > MAX_WORKER_LINE) s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => {
      sockClosed = true;
      maybeExit();
    });
    for (const line of queue.splice(0)) s.write(line);
    // a SIGKILL that came before the worker said hello could not reach it
    if (killedWith === 'SIGKILL') s.destroy();
  });

  // its own process group: a Ctrl-C in the terminal reaches the studio, which turns it into a stop, and not mpirun,
  // which would end the job at once
  const child = spawn(mpirun, mpirunArgs(entry, socketPath, opts), {
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
    env: mpirunEnv(process.env, { ...opts.env, [WORKER_SOCKET_ENV]: socketPath }),
  });
  child.on('error', (e) => {
    if (mpirunExit) return;
    emit({
      seq: lastSeq + 1,
      type: 'error',
      error: new StudioError(
        ErrorCode.ENGINE_UNAVAILABLE,
        `Open MPI's mpirun could not start (${mpirun}): ${e.message}.`,
        INSTALL_HINT,
      ).toPlain(),
    });
    mpirunExit = { code: 127, signal: null };
    maybeExit();
  });
  child.on('exit', (code, signal) => {
    mpirunExit = { code, signal };
    // a worker that has not connected yet never will
    if (!sock) stopListening();
    maybeExit();
  });

  return {
    get pid() {
      return child.pid;
    },
    send(m: ParentMessage) {
      if (exited) return;
      const line = JSON.stringify(m) + '\n';
      if (!sock) queue.push(line);
      else if (!sockClosed && !sock.destroyed) sock.write(line);
    },
    onMessage: (cb) => void messageCbs.push(cb),
    onExit: (cb) => void exitCbs.push(cb),
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (exited) return;
      killedWith = signal;
      // mpirun forwards SIGTERM, SIGINT, SIGUSR1/2 to the worker (and SIGKILLs it a second later if it stays)
      if (!mpirunExit) child.kill(signal);
      // a killed mpirun forwards nothing: the worker is killed directly; before its hello, its connection is cut
      // (it exits when that closes); before it connects, it is refused
      if (signal === 'SIGKILL' || mpirunExit) {
        if (workerPid !== null) killWorker();
        else if (sock) sock.destroy();
        else stopListening();
      }
    },
  };
}

// ---- the worker's side ----

/** A worker's channel to the studio over the socket transport. */
export interface ParentSocket {
  /** sends one message; resolves once it has been handed to the system */
  post(m: WorkerMessage): Promise<void>;
  onMessage(cb: (m: ParentMessage) => void): void;
  /** the studio's end closed (it is gone, or it ended the worker) */
  onClose(cb: () => void): void;
}

/** Connects a worker to the studio's socket (GPT2_STUDIO_WORKER_SOCKET) and says hello with its pid. */
export async function connectParentSocket(socketPath: string): Promise<ParentSocket> {
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.createConnection(socketPath);
    c.once('connect', () => {
      c.removeAllListeners('error');
      resolve(c);
    });
    c.once('error', (e) =>
      reject(
        new StudioError(
          ErrorCode.INTERNAL,
          `This worker cannot reach the studio at ${socketPath} (${(e as NodeJS.ErrnoException).code ?? e.message}).`,
          'The studio that started it has gone or killed it: start the run again.',
        ),
      ),
    );
  });
  s.setEncoding('utf8');
  s.on('error', () => {});
  const messageCbs: ((m: ParentMessage) => void)[] = [];
  const closeCbs: (() => void)[] = [];
  // what arrives before anyone listens is kept for the first listener
  const unheard: ParentMessage[] = [];
  let buf = '';
  s.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      let m: unknown;
      try {
        m = JSON.parse(line);
      } catch {
        continue;
      }
      if (m && typeof m === 'object' && typeof (m as { type?: unknown }).type === 'string') {
        if (messageCbs.length === 0) unheard.push(m as ParentMessage);
        for (const cb of messageCbs) cb(m as ParentMessage);
      }
    }
  });
  s.on('close', () => {
    for (const cb of closeCbs) cb();
  });
  s.write(JSON.stringify({ hello: { pid: process.pid } }) + '\n');
  return {
    post: (m) =>
      new Promise<void>((resolve) => {
        if (s.destroyed || s.writableEnded) return resolve();
        s.write(JSON.stringify(m) + '\n', () => resolve());
      }),
    onMessage: (cb) => {
      messageCbs.push(cb);
      for (const m of unheard.splice(0)) cb(m);
    },
    onClose: (cb) => void closeCbs.push(cb),
  };
}
