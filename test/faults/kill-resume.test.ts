/**
 * Reliability under SIGKILL, through the Studio service: one training run is killed again and again (its worker's
 * whole process tree, with SIGKILL) at seeded random points: during a step, while a checkpoint is being written
 * (`.tmp-step_*`) and while keep_last prunes one (`.deleting-*`). After each kill the run is resumed, sometimes by
 * the same Studio and sometimes by a new one (the two places leftovers are cleaned), and the suite checks:
 *   - the store passes `PRAGMA integrity_check`;
 *   - no `.tmp-*`, `.deleting-*` or `.old-*` folder, nor an incomplete `step_*` one, is left once the next attempt
 *     runs, and the cleanup is logged on the run with the names it removed;
 *   - every checkpoint listed on disk (listCheckpointSteps) or in the service's index loads (readCheckpoint);
 *   - at the end, the run's losses, norms and final weights are bitwise those of an uninterrupted run of the same
 *     config (native-cpu on one thread: the same engine and the same summation order in every attempt).
 * The kill plan is drawn from GPT2_STUDIO_FAULT_SEED (a default keeps runs comparable); where a kill lands within a
 * checkpoint write depends on timing as well, so the summary records where each one actually landed, as read from
 * the checkpoints folder after the worker died.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { checkpointDirName, listCheckpointSteps, readCheckpoint } from '../../src/node/checkpoints/files';
import { Studio } from '../../src/node/studio';
import type { Run } from '../../src/node/store';
import type { NamedTensors } from '../../src/core/tensors';

// One thread: the workers inherit it, and the shared 2-core machine keeps a core for everything else.
process.env.GPT2_STUDIO_THREADS = '1';

const SEED = Number(process.env.GPT2_STUDIO_FAULT_SEED ?? 20_261_207);
const KILLS = 12;
/**
 * Each attempt trains at most about three steps before its kill (the kill is armed after one or two steps and fires
 * within 150 ms), so 12 kills stay well short of the last steps: a kill after the final checkpoint is another case
 * (see the last tests).
 */
const MAX_STEPS = 48;

/** A tiny model (1.6M parameters, a 19 MB checkpoint) that checkpoints and prunes after every step. */
const CONFIG = {
  model: { n_layer: 1, n_head: 2, n_embd: 32, block_size: 64 },
  dataset: 'builtin',
  engine: 'native-cpu',
  total_batch_size: 256,
  batch_size: 4,
  seq_len: 64,
  max_steps: MAX_STEPS,
  warmup_steps: 2,
  max_lr: 3e-3,
  eval_interval: 0,
  hellaswag_interval: 0,
  sample_interval: 0,
  checkpoint_interval: 1,
  keep_last: 2,
  seed: 11,
};

const quiet = { out: () => {}, err: () => {} };

/** mulberry32: a small seeded generator, so that a failing kill plan can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Target = 'step' | 'write' | 'prune';
type Landing = 'step' | 'write' | 'prune' | 're-save';

interface KillPlan {
  target: Target;
  /** steps of the attempt after which the kill is armed */
  afterSteps: number;
  /** delay after the trigger (a step kill: after the arming step; a write kill: after the write began) */
  delayMs: number;
  /** resume through a new Studio (cleanup at studio start) rather than the same one (cleanup in RunManager.start) */
  freshStudio: boolean;
}

function shuffled<T>(xs: T[], r: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function killPlans(seed: number): KillPlan[] {
  const r = rng(seed);
  // every kind of point, and both resume paths, are covered whatever the seed; the seed orders them and draws the rest
  const targets = shuffled(
    Array.from({ length: KILLS }, (_, i) => (['write', 'prune', 'step'] as const)[i % 3]!),
    r,
  );
  const fresh = shuffled(
    Array.from({ length: KILLS }, (_, i) => i % 2 === 0),
    r,
  );
  return targets.map((target, i) => ({
    target,
    afterSteps: 1 + Math.floor(r() * 2),
    // a write takes about 30-90 ms here, a step plus its checkpoint about 150 ms
    delayMs: target === 'prune' ? 0 : Math.floor(r() * (target === 'write' ? 50 : 150)),
    freshStudio: fresh[i]!,
  }));
}

/** The process and every descendant of it (Linux /proc; elsewhere the process alone). */
function processTree(root: number): number[] {
  const parentOf = new Map<number, number>();
  try {
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        // the command name may hold spaces and parentheses: the fields after the last ")" are fixed
        const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        parentOf.set(Number(e), ppid);
      } catch {
        // exited meanwhile
      }
    }
  } catch {
    return [root];
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parentOf) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

/**
 * SIGKILLs a worker's process tree. The worker is forked into this test process's own process group (as the
 * studio forks it), so signalling the group would kill the test runner as well: the tree is signalled instead.
 */
function killTree(pid: number): number {
  const tree = processTree(pid);
  for (const p of tree) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return tree.length;
}

const LEFTOVER = /^\.(tmp|deleting|old)-step_\d{6,}-(\d+)/;

/**
 * What a killed attempt left in a checkpoints folder: partial writes, interrupted deletions, moved-aside re-saves
 * and incomplete `step_*` folders. Entries named with `livePid` belong to the attempt running now, not to a dead one.
 */
function leftovers(ckDir: string, livePid?: number | null): string[] {
  if (!fs.existsSync(ckDir)) return [];
  return fs.readdirSync(ckDir).filter((name) => {
    const m = LEFTOVER.exec(name);
    if (m) return Number(m[2]) !== livePid;
    if (/^step_\d{6,}$/.test(name))
      return !['state.json', 'model.safetensors', 'optimizer.safetensors'].every((f) =>
        fs.existsSync(path.join(ckDir, name, f)),
      );
    return false;
  });
}

function landingOf(entries: string[]): Landing {
  if (entries.some((e) => e.startsWith('.tmp-'))) return 'write';
  if (entries.some((e) => e.startsWith('.deleting-'))) return 'prune';
  if (entries.some((e) => e.startsWith('.old-'))) return 're-save';
  return 'step';
}

const bitsOf = (xs: number[]) => Buffer.from(Float64Array.from(xs).buffer);

function sameTensors(a: NamedTensors, b: NamedTensors): string[] {
  const differ: string[] = [];
  for (const [name, t] of a) {
    const u = b.get(name);
    if (
      !u ||
      !Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength).equals(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      )
    )
      differ.push(name);
  }
  if (a.size !== b.size) differ.push(`(${a.size} tensors vs ${b.size})`);
  return differ;
}

interface KillRecord {
  n: number;
  target: Target;
  landed: Landing;
  /** the last step the attempt reported before it died */
  lastStep: number;
  /** the newest complete checkpoint after the kill (the resume point) */
  resumeFrom: number | null;
  left: string[];
  processes: number;
  resumedBy: 'same studio' | 'new studio';
  checkpointsVerified: number;
}

describe('training survives SIGKILLs at random points, and resumes bit for bit', () => {
  let home: string;
  let studio: Studio;
  let straight:
    { loss: number[]; norm: number[]; tokens: number[]; steps: number[]; weights: NamedTensors } | undefined;
  let killedRunId = '';
  const kills: KillRecord[] = [];
  const figures = {
    checkpointsLoaded: 0,
    leftoversCleaned: 0,
    integrityChecks: 0,
    started: performance.now(),
    endToEndMs: 0,
    knownDefect: '',
  };

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'gpt2-faults-kill-'));
    expect(await main(['prepare', 'builtin', '--size-mb', '1', '--home', home], quiet)).toBe(0);
    studio = new Studio({ home });
  });

  afterAll(async () => {
    await studio?.shutdown(5_000);
    if (home) fs.rmSync(home, { recursive: true, force: true });
    if (kills.length === 0) return;
    // the record of this suite: quoted in the reliability notes
    const count = <K extends keyof KillRecord>(k: K, v: KillRecord[K]) => kills.filter((x) => x[k] === v).length;
    console.log(
      [
        `fault suite: kill and resume (seed ${SEED}, ${MAX_STEPS} steps, checkpoint every step, keep_last 2, native-cpu, 1 thread)`,
        ' #  target  landed   last step  resume from  ckpts loaded  procs  resumed by    left behind (cleaned on resume)',
        ...kills.map(
          (k) =>
            `${String(k.n).padStart(2)}  ${k.target.padEnd(6)}  ${k.landed.padEnd(7)}  ${String(k.lastStep).padStart(9)}  ${String(k.resumeFrom ?? '-').padStart(11)}  ${String(k.checkpointsVerified).padStart(12)}  ${String(k.processes).padStart(5)}  ${k.resumedBy.padEnd(12)}  ${k.left.join(', ') || '-'}`,
        ),
        `kills survived: ${kills.length} (landed: ${count('landed', 'step')} between or in steps, ${count('landed', 'write')} in checkpoint writes, ${count('landed', 'prune')} in prunes, ${count('landed', 're-save')} in re-saves)`,
        `resumed by the same studio: ${count('resumedBy', 'same studio')}, by a new studio: ${count('resumedBy', 'new studio')}`,
        `leftover folders cleaned: ${figures.leftoversCleaned}; checkpoints loaded and checked: ${figures.checkpointsLoaded}; integrity checks ok: ${figures.integrityChecks}`,
        `final losses bitwise equal to the uninterrupted run: ${figures.endToEndMs > 0 ? 'yes' : 'not reached'}; duration ${((performance.now() - figures.started) / 1000).toFixed(1)} s`,
        ...(figures.knownDefect
          ? [`a kill after the final checkpoint, then resume, failed: ${figures.knownDefect}`]
          : []),
      ].join('\n'),
    );
  });

  /** Loads every checkpoint the disk and the service's index list; returns how many it loaded. */
  async function verifyCheckpoints(runId: string): Promise<number> {
    const runDir = path.join(home, 'runs', runId);
    const steps = listCheckpointSteps(runDir);
    for (const s of steps) {
      const c = readCheckpoint(path.join(runDir, 'checkpoints', checkpointDirName(s)));
      expect(c.state.step, `checkpoint ${checkpointDirName(s)}`).toBe(s);
      expect(c.state.trainer.step).toBe(s);
    }
    // what the Checkpoints page offers: each entry a complete checkpoint on disk
    const listed = (await studio.invoke('checkpoints-list', { runId })).map((c) => c.step);
    expect(
      listed.filter((s) => !steps.includes(s)),
      `index entries of ${runId} that are not complete on disk`,
    ).toEqual([]);
    figures.checkpointsLoaded += steps.length;
    return steps.length;
  }

  function checkStore(): void {
    expect(studio.store.integrityCheck()).toEqual(['ok']);
    figures.integrityChecks++;
  }

  it('an uninterrupted run of the config: the reference', async () => {
    const run = await studio.invoke('runs-create', { config: CONFIG, name: 'straight' });
    const end = await studio.runs.wait(run.id);
    expect(end.status, JSON.stringify(end.error)).toBe('done');
    const m = await studio.invoke('runs-metrics', { id: run.id, names: ['train/loss', 'train/norm'] });
    expect(m['train/loss']!.steps).toEqual(Array.from({ length: MAX_STEPS }, (_, i) => i));
    const final = readCheckpoint(path.join(home, 'runs', run.id, 'checkpoints', checkpointDirName(MAX_STEPS)));
    straight = {
      loss: m['train/loss']!.values,
      norm: m['train/norm']!.values,
      tokens: m['train/loss']!.tokensSeen,
      steps: m['train/loss']!.steps,
      weights: final.weights,
    };
    // the loss moves, so that equal series say something
    expect(new Set(straight.loss).size).toBe(MAX_STEPS);
  }, 120_000);

  it(`${KILLS} SIGKILLs during steps, checkpoint writes and prunes: each resume cleans up, the store stays sound, every checkpoint loads`, async () => {
    const plans = killPlans(SEED);
    const created = await studio.invoke('runs-create', { config: CONFIG, name: 'killed', start: false });
    const runId = created.id;
    killedRunId = runId;
    const runDir = path.join(home, 'runs', runId);
    const ckDir = path.join(runDir, 'checkpoints');
    // watched from before the first worker starts, so that no write or prune goes unseen
    fs.mkdirSync(ckDir, { recursive: true });

    // the attempt that is armed now: the watcher and the step listener call into it
    let current: { onStep(step: number): void; onEntry(name: string): void } | null = null;
    const watcher = fs.watch(ckDir, (_event, name) => {
      if (name) current?.onEntry(String(name));
    });
    const subscribe = () =>
      studio.on('run-step', (p) => {
        if (p.runId === runId) current?.onStep(p.step);
      });
    let unsubscribe = subscribe();

    try {
      let run: Run = await studio.invoke('runs-resume', { id: runId });
      for (let n = 1; n <= KILLS; n++) {
        const plan = plans[n - 1]!;
        const pid = studio.store.getRun(runId)!.pid;
        expect(pid, 'the store records the worker pid of a running run').toBe(run.pid);
        expect(pid).toBeGreaterThan(0);
        let stepsSeen = 0;
        let lastStep = -1;
        let armed = false;
        let fired = false;
        let processes = 0;
        const fire = () => {
          if (fired) return;
          fired = true;
          processes = killTree(pid!);
        };
        const fireAfter = (ms: number) => (ms > 0 ? void setTimeout(fire, ms) : fire());
        current = {
          onStep(step) {
            lastStep = step;
            stepsSeen++;
            if (armed || stepsSeen < plan.afterSteps) return;
            armed = true;
            if (plan.target === 'step') fireAfter(plan.delayMs);
          },
          onEntry(name) {
            if (!armed || fired) return;
            // an event also comes when the folder goes away (renamed into place, or deleted): act only on one that is there
            const want = plan.target === 'write' ? '.tmp-' : plan.target === 'prune' ? '.deleting-' : null;
            if (!want || !name.startsWith(want) || !fs.existsSync(path.join(ckDir, name))) return;
            fireAfter(plan.delayMs);
          },
        };

        const ended = await studio.runs.wait(runId);
        current = null;
        expect(
          fired,
          `kill ${n} (${plan.target}) never fired: the attempt ended ${ended.status} at step ${lastStep}`,
        ).toBe(true);
        expect(ended.status).toBe('interrupted');
        expect(ended.error?.code).toBe('INTERRUPTED');
        expect(ended.error?.message).toMatch(/was killed by SIGKILL/);

        // what the kill left, read once the worker is gone and before anything cleans it
        const entries = fs.readdirSync(ckDir);
        const left = leftovers(ckDir);
        const steps = listCheckpointSteps(runDir);
        expect(
          steps.length,
          `after kill ${n}: complete checkpoints ${steps.join(', ')} (folder: ${entries.join(', ')})`,
        ).toBeGreaterThan(0);
        checkStore();
        const verified = await verifyCheckpoints(runId);

        let resumedBy: KillRecord['resumedBy'] = 'same studio';
        if (plan.freshStudio) {
          // as after a crash of the app: a new service over the same workspace cleans every idle run's leftovers
          resumedBy = 'new studio';
          unsubscribe();
          studio.close();
          studio = new Studio({ home });
          unsubscribe = subscribe();
          expect(studio.runs.get(runId).status).toBe('interrupted');
          expect(leftovers(ckDir), 'left after the studio started').toEqual([]);
          checkStore();
        }
        run = await studio.invoke('runs-resume', { id: runId });
        expect(run.status).toBe('running');
        // the new attempt's own .tmp- folder may already be there; nothing of a dead one may be
        expect(leftovers(ckDir, run.pid), `left after resume ${n}`).toEqual([]);
        expect(listCheckpointSteps(runDir)).toEqual(steps);
        if (left.length) {
          const logs = (await studio.invoke('runs-logs', { id: runId }))
            .map((l) => l.message)
            .filter((m) => m.includes('left its checkpoints unfinished'));
          for (const name of left)
            expect(
              logs.some((m) => m.includes(name)),
              `a log line names the removed ${name}`,
            ).toBe(true);
          figures.leftoversCleaned += left.length;
        }
        const resumeLog = (await studio.invoke('runs-logs', { id: runId, tail: 5 })).map((l) => l.message);
        expect(resumeLog).toContain(`resuming from checkpoint step ${steps[steps.length - 1]}`);

        kills.push({
          n,
          target: plan.target,
          landed: landingOf(entries),
          lastStep,
          resumeFrom: steps[steps.length - 1] ?? null,
          left,
          processes,
          resumedBy,
          checkpointsVerified: verified,
        });
      }

      // the last attempt runs to the end
      const end = await studio.runs.wait(runId);
      expect(end.status, JSON.stringify(end.error)).toBe('done');
      expect(leftovers(ckDir)).toEqual([]);
      expect(fs.readdirSync(ckDir).sort()).toEqual([checkpointDirName(MAX_STEPS - 1), checkpointDirName(MAX_STEPS)]);
      checkStore();
      await verifyCheckpoints(runId);
      expect(end.attempts.length).toBe(KILLS + 1);
      // the kills landed in every kind of place (a write kill may land just after its rename, which counts as a step)
      expect(
        kills.filter((k) => k.landed === 'write').length,
        'kills that landed inside a checkpoint write',
      ).toBeGreaterThan(0);
      expect(kills.filter((k) => k.landed === 'prune').length, 'kills that landed inside a prune').toBeGreaterThan(0);
    } finally {
      current = null;
      unsubscribe();
      watcher.close();
    }
  }, 300_000);

  it('the resumed run recorded bitwise the losses, norms and final weights of the uninterrupted run', async () => {
    expect(straight, 'the reference run').toBeDefined();
    expect(killedRunId).not.toBe('');
    const m = await studio.invoke('runs-metrics', { id: killedRunId, names: ['train/loss', 'train/norm'] });
    // one series, without gaps or repeats: each resume forgot what the killed attempt had recorded past its checkpoint
    expect(m['train/loss']!.steps).toEqual(straight!.steps);
    expect(m['train/loss']!.tokensSeen).toEqual(straight!.tokens);
    const differs = (a: number[], b: number[]) => a.map((x, i) => (Object.is(x, b[i]) ? -1 : i)).filter((i) => i >= 0);
    expect(differs(m['train/loss']!.values, straight!.loss), 'steps whose loss differs').toEqual([]);
    expect(differs(m['train/norm']!.values, straight!.norm), 'steps whose norm differs').toEqual([]);
    expect(bitsOf(m['train/loss']!.values).equals(bitsOf(straight!.loss))).toBe(true);
    const final = readCheckpoint(path.join(home, 'runs', killedRunId, 'checkpoints', checkpointDirName(MAX_STEPS)));
    expect(sameTensors(straight!.weights, final.weights), 'tensors that differ').toEqual([]);
    figures.endToEndMs = performance.now() - figures.started;
  });

  /**
   * The one place the kills above avoid: after the final checkpoint is complete, while the worker prunes and before
   * it reports `done`. Every step is trained and recorded, and the final checkpoint loads, yet the run is left
   * `interrupted`, its error hint says to resume it, and resuming is refused ("has already finished its N steps",
   * RunManager.start in src/node/runs/manager.ts), so nothing brings it to `done`.
   */
  const FINAL_STEPS = 4;
  let finalRunId = '';

  it('a kill after the final checkpoint leaves the run interrupted, with every step recorded and the final checkpoint complete', async () => {
    const run = await studio.invoke('runs-create', {
      config: { ...CONFIG, max_steps: FINAL_STEPS },
      name: 'killed after its final checkpoint',
      start: false,
    });
    finalRunId = run.id;
    const runDir = path.join(home, 'runs', run.id);
    const ckDir = path.join(runDir, 'checkpoints');
    fs.mkdirSync(ckDir, { recursive: true });
    const finalName = checkpointDirName(FINAL_STEPS);
    let pid = 0;
    let fired = false;
    // the final checkpoint renamed into place: the worker has still to prune and to report done
    const watcher = fs.watch(ckDir, (_event, name) => {
      if (fired || String(name) !== finalName || !fs.existsSync(path.join(ckDir, finalName))) return;
      fired = true;
      killTree(pid);
    });
    try {
      pid = (await studio.invoke('runs-resume', { id: run.id })).pid!;
      const end = await studio.runs.wait(run.id);
      expect(fired).toBe(true);
      expect(end.status).toBe('interrupted');
      expect(end.error?.hint).toMatch(/Resume it from its last checkpoint/);
    } finally {
      watcher.close();
    }
    expect(listCheckpointSteps(runDir)).toContain(FINAL_STEPS);
    expect(readCheckpoint(path.join(ckDir, finalName)).state.step).toBe(FINAL_STEPS);
    const m = await studio.invoke('runs-metrics', { id: run.id, names: ['train/loss'] });
    expect(m['train/loss']!.steps).toEqual(Array.from({ length: FINAL_STEPS }, (_, i) => i));
    expect(m['train/loss']!.values.every(Number.isFinite)).toBe(true);
  }, 60_000);

  // resume finds nothing left to train: it marks the run done, with a log line that says why
  it('resuming a run killed after its final checkpoint brings it to done', async () => {
    expect(finalRunId).not.toBe('');
    try {
      await studio.invoke('runs-resume', { id: finalRunId });
      const end = await studio.runs.wait(finalRunId);
      expect(end.status).toBe('done');
      expect(end.error).toBeNull();
      const logs = await studio.invoke('runs-logs', { id: finalRunId });
      expect(
        logs.some((l) =>
          /saved its final checkpoint \(step \d+\) before its worker stopped: it is done/.test(l.message),
        ),
      ).toBe(true);
    } catch (e) {
      figures.knownDefect = `${e instanceof Error ? e.message : String(e)} (run left ${studio.runs.get(finalRunId).status})`;
      throw e;
    }
  });
});
