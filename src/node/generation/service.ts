/**
 * Generation: text continued (or a conversation answered) token by token with the KV cache, streamed as
 * `generate-token` events and ended by one `generate-done`. One generation runs at a time; the last model used is
 * kept loaded, so the next message of a chat does not load it again. Also the sample gallery: one prompt and seed
 * across several models, answered at once.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, StudioError, toPlainError } from '../../shared/errors';
import type { StudioEvents } from '../../shared/contract';
import { DEFAULT_SAMPLING_SETTINGS, targetKey, type ModelTarget, type SamplingSettings } from '../../shared/models';
import type { Model } from '../../core/engine/types';
import { chatPrompt } from '../../core/chat';
import { Rng } from '../../core/random';
import {
  checkMaxTokens,
  limitReason,
  roomAfter,
  sampleToken,
  validateSampling,
  type EndReason,
} from '../../core/sampling';
import { EOT, StreamDecoder, encode } from '../../core/tokenizer';
import { openRemoteModel } from './remote-model';
import { listCheckpointSteps } from '../checkpoints/files';
import { runDirOf } from '../train/paths';
import { resolveModelTarget } from '../models/service';
import fs from 'node:fs';
import type {
  GenerateRequest,
  GenerateStarted,
  GenerateEndReason,
  GenerateTokenEvent,
  GenerateDoneEvent,
  SampleRequest,
  SampleResult,
} from '../../shared/api/generation';
export type {
  GenerateRequest,
  GenerateStarted,
  GenerateEndReason,
  GenerateTokenEvent,
  GenerateDoneEvent,
  SampleRequest,
  SampleResult,
};

type Emit = <K extends keyof StudioEvents>(name: K, payload: StudioEvents[K]) => void;

/** In a conversation, the model starting the next user turn ends its answer. */
const TURN_END = /\n\s*User:/;
/** The end of a text that may still become TURN_END as more tokens come: a line break, spaces, part of "User". */
const TURN_START = /\n\s*(?:U(?:s(?:e(?:r)?)?)?)?$/;

/** Where a possible start of the next user turn begins at the end of `text` (its length when there is none). */
export function turnStartAt(text: string): number {
  const m = TURN_START.exec(text);
  return m ? m.index : text.length;
}

interface Job {
  genId: string;
  req: GenerateRequest;
  stop: boolean;
  onDone?: (d: GenerateDoneEvent) => void;
}

export class GenerationService {
  private cached: { key: string; engine: string; model: Model; label: string } | null = null;
  private readonly queue: Job[] = [];
  private current: Job | null = null;
  private busy: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly home: string,
    private readonly emit: Emit,
    /** the model worker's entry (default: the sources') */
    private readonly workerEntry?: string,
  ) {}

  /** A model, loaded (or the cached one when it is the same). Callers hold the service's lock. */
  private async model(target: ModelTarget, engine = 'auto'): Promise<{ model: Model; label: string }> {
    const key = targetKey(target);
    if (
      this.cached &&
      this.cached.key === key &&
      this.cached.engine === engine &&
      !('runId' in target && target.step === undefined)
    ) {
      return this.cached;
    }
    this.dropCache();
    // in a worker thread: loading and decoding a large model never blocks the service
    const opened = await openRemoteModel(this.home, target, engine, this.workerEntry);
    const model = opened.model;
    const label = 'modelId' in target ? target.modelId : opened.label;
    this.cached = { key, engine, model, label };
    return this.cached;
  }

  private dropCache(): void {
    this.cached?.model.dispose();
    this.cached = null;
  }

  /** Runs `fn` after everything queued before it (one model use at a time). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn);
    this.busy = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Starts a generation; its text comes as generate-token events and its end as generate-done. */
  async start(req: GenerateRequest, hooks: { onDone?: (d: GenerateDoneEvent) => void } = {}): Promise<GenerateStarted> {
    if (this.closed) throw new StudioError(ErrorCode.CANCELLED, 'The studio is closing.', '');
    if ((req.prompt === undefined) === (req.messages === undefined)) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        'A generation needs a prompt or messages (one of the two).',
        'Send {prompt: "..."} to continue a text, or {messages: [...]} to answer a conversation.',
      );
    }
    const s = settingsOf(req);
    validateSampling(s);
    const genId = req.genId ?? `gen-${randomUUID()}`;
    if (this.current?.genId === genId || this.queue.some((j) => j.genId === genId)) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The generation id "${genId}" is already in use.`,
        'Send a new id for each generation (or none, and use the one the reply gives).',
      );
    }
    const job: Job = { genId, req, stop: false, onDone: hooks.onDone };
    let started: { promptTokens: number; label: string };
    if (this.current || this.queue.length > 0) {
      // another generation holds the model: check the target without loading it, and queue (it can be stopped there)
      const t = resolveModelTarget(this.home, req.target);
      if ('runId' in t) {
        const steps = listCheckpointSteps(runDirOf(this.home, t.runId));
        if (!steps.length || (t.step !== undefined && !steps.includes(t.step))) {
          throw new StudioError(
            ErrorCode.NOT_FOUND,
            `Run ${t.runId} has no checkpoint${t.step !== undefined ? ` at step ${t.step}` : ''}.`,
            steps.length ? `Checkpoints: ${steps.join(', ')}.` : 'Wait for its first checkpoint.',
          );
        }
      } else if (!fs.existsSync(t.weightsPath))
        throw new StudioError(ErrorCode.FILE_NOT_FOUND, `No weights at ${t.weightsPath}.`, 'Pick another model.');
      // the context is known without loading when the queued job uses the loaded model (as a chat does); otherwise
      // max tokens is checked when the job starts, and a refusal ends it with that error
      const loaded = this.contextOf(req.target);
      const maxTokens = loaded > 0 ? maxTokensFor(req, loaded) : s.maxTokens;
      started = {
        promptTokens: this.promptOf(req, loaded || Number.MAX_SAFE_INTEGER, maxTokens).length,
        label: targetKey(req.target),
      };
    } else {
      // load the model now, so that a bad target fails the request rather than the stream
      started = await this.exclusive(async () => {
        const { model, label } = await this.model(req.target, req.engine);
        const maxTokens = maxTokensFor(req, model.config.blockSize);
        return { promptTokens: this.promptOf(req, model.config.blockSize, maxTokens).length, label };
      });
    }
    // the studio may have closed while the model loaded: nothing may start (or load) after that
    if (this.closed) throw new StudioError(ErrorCode.CANCELLED, 'The studio is closing.', '');
    this.queue.push(job);
    void this.pump();
    return { genId: job.genId, ...started };
  }

  /** Stops a generation (what it generated so far is kept); a queued one ends without starting. */
  stop(arg: { genId: string }): { stopped: boolean } {
    if (this.current?.genId === arg.genId) {
      this.current.stop = true;
      return { stopped: true };
    }
    const i = this.queue.findIndex((j) => j.genId === arg.genId);
    if (i < 0) return { stopped: false };
    const job = this.queue.splice(i, 1)[0]!;
    this.finish(job, {
      genId: job.genId,
      text: '',
      tokens: 0,
      tokensPerSec: 0,
      reason: 'stop',
      contextTokens: this.contextOf(job.req.target),
    });
    return { stopped: true };
  }

  /** The context of a target's loaded model, when it is the one loaded (0 otherwise). */
  private contextOf(target: ModelTarget): number {
    return this.cached && this.cached.key === targetKey(target) ? this.cached.model.config.blockSize : 0;
  }

  /**
   * The prompt's tokens, cut to fit the context. Prompt and answer share the model's context (block_size): a long
   * prompt (a long conversation) loses its start so that at least maxTokens, or a quarter of the context when
   * that is less, is left to answer in. An answer that fills the rest before max tokens ends with `context`.
   */
  private promptOf(req: GenerateRequest, blockSize: number, maxTokens: number): number[] {
    const ids = req.messages ? chatPrompt(req.messages) : [EOT, ...encode(req.prompt ?? '')];
    const room = Math.min(Math.max(1, maxTokens), Math.floor(blockSize / 4)) || 1;
    const keep = Math.max(1, blockSize - room);
    return ids.length > keep ? ids.slice(ids.length - keep) : ids;
  }

  private finish(job: Job, d: GenerateDoneEvent): void {
    this.emit('generate-done', d);
    try {
      job.onDone?.(d);
    } catch (e) {
      console.error('A generation listener failed:', e);
    }
  }

  private async pump(): Promise<void> {
    if (this.current) return;
    const job = this.queue.shift();
    if (!job) return;
    this.current = job;
    try {
      await this.exclusive(() => this.runJob(job));
    } finally {
      this.current = null;
      void this.pump();
    }
  }

  private async runJob(job: Job): Promise<void> {
    const s = settingsOf(job.req);
    let text = '';
    /** characters of `text` already sent as generate-token */
    let sent = 0;
    let tokens = 0;
    let t0 = performance.now();
    const rate = () => (tokens > 0 ? tokens / Math.max(1e-6, (performance.now() - t0) / 1000) : 0);
    const send = (upTo: number) => {
      if (upTo > sent)
        this.emit('generate-token', { genId: job.genId, text: text.slice(sent, upTo), tokens, tokensPerSec: rate() });
      sent = Math.max(sent, upTo);
    };
    let contextTokens = 0;
    if (this.closed) {
      this.finish(job, {
        genId: job.genId,
        text: '',
        tokens: 0,
        tokensPerSec: 0,
        reason: 'stop',
        contextTokens: this.contextOf(job.req.target),
      });
      return;
    }
    try {
      const { model } = await this.model(job.req.target, job.req.engine);
      contextTokens = model.config.blockSize;
      const maxTokens = maxTokensFor(job.req, contextTokens);
      const prompt = this.promptOf(job.req, contextTokens, maxTokens);
      const maxNew = Math.min(maxTokens, roomAfter(prompt.length, contextTokens));
      const V = model.config.vocabSize;
      const rng = new Rng(s.seed);
      const decoder = new StreamDecoder();
      const chat = job.req.messages !== undefined;
      const cache = model.createCache(1, prompt.length + maxNew);
      // max tokens, or the context when it capped the answer sooner (decided after the loop)
      let reason: GenerateEndReason | null = null;
      t0 = performance.now();
      try {
        let logits = await model.decodeStep(cache, Int32Array.from(prompt), prompt.length);
        for (let i = 0; i < maxNew; i++) {
          if (job.stop || this.closed) {
            reason = 'stop';
            break;
          }
          const tok = sampleToken(logits.subarray(0, V), s, rng);
          if (tok === EOT) {
            reason = 'eot';
            break;
          }
          tokens++;
          text += decoder.push(tok);
          if (chat) {
            const m = TURN_END.exec(text);
            if (m) {
              // the model began the next user turn: the answer ends before it
              text = text.slice(0, m.index);
              reason = 'eot';
              break;
            }
            // hold back what may still become "\n\nUser:" (it is several tokens)
            send(turnStartAt(text));
          } else send(text.length);
          if (i === maxNew - 1) break;
          logits = await model.decodeStep(cache, Int32Array.of(tok), 1);
          // let the event loop deliver the events (and a stop request) between tokens
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        cache.dispose();
      }
      text += decoder.flush();
      if (chat) text = text.slice(0, turnStartAt(text)).trimEnd();
      send(text.length);
      this.finish(job, {
        genId: job.genId,
        text: chat ? text.trim() : text,
        tokens,
        tokensPerSec: rate(),
        reason: reason ?? limitReason(tokens, maxTokens),
        contextTokens,
      });
    } catch (e) {
      // a refused setting (max tokens above the context) leaves the model loaded; a model that failed is not kept
      if (!(e instanceof StudioError && e.code === ErrorCode.BAD_ARGUMENT)) this.dropCache();
      this.finish(job, {
        genId: job.genId,
        text: text.slice(0, sent),
        tokens,
        tokensPerSec: rate(),
        reason: 'error',
        contextTokens,
        error: toPlainError(e),
      });
    }
  }

  /** The same prompt and seed across models (the sample gallery); a model that fails gets its error instead. */
  async sample(req: SampleRequest): Promise<SampleResult[]> {
    const s = settingsOf(req);
    validateSampling(s);
    const out: SampleResult[] = [];
    for (const target of req.targets) {
      out.push(
        await this.exclusive(async () => {
          const key = targetKey(target);
          if (this.closed)
            return {
              key,
              label: key,
              text: '',
              tokens: 0,
              tokensPerSec: 0,
              contextTokens: 0,
              error: toPlainError(new StudioError(ErrorCode.CANCELLED, 'The studio is closing.', '')),
            };
          let contextTokens = 0;
          try {
            const { model, label } = await this.model(target, req.engine);
            contextTokens = model.config.blockSize;
            const maxTokens = maxTokensFor(req, contextTokens);
            const prompt = this.promptOf({ target, prompt: req.prompt }, contextTokens, maxTokens);
            const maxNew = Math.min(maxTokens, roomAfter(prompt.length, contextTokens));
            const rng = new Rng(s.seed);
            const V = model.config.vocabSize;
            const cache = model.createCache(1, prompt.length + maxNew);
            const ids: number[] = [];
            let reason: EndReason | null = null;
            const t0 = performance.now();
            try {
              let logits = await model.decodeStep(cache, Int32Array.from(prompt), prompt.length);
              for (let i = 0; i < maxNew; i++) {
                const tok = sampleToken(logits.subarray(0, V), s, rng);
                if (tok === EOT) {
                  reason = 'eot';
                  break;
                }
                ids.push(tok);
                if (i === maxNew - 1) break;
                logits = await model.decodeStep(cache, Int32Array.of(tok), 1);
              }
            } finally {
              cache.dispose();
            }
            const d = new StreamDecoder();
            const text = d.push(ids) + d.flush();
            return {
              key,
              label,
              text,
              tokens: ids.length,
              tokensPerSec: ids.length / Math.max(1e-6, (performance.now() - t0) / 1000),
              reason: reason ?? limitReason(ids.length, maxTokens),
              contextTokens,
            };
          } catch (e) {
            // a refused setting leaves the model loaded; a model that failed (its worker may have died) is not kept
            if (!(e instanceof StudioError && e.code === ErrorCode.BAD_ARGUMENT)) this.dropCache();
            return { key, label: key, text: '', tokens: 0, tokensPerSec: 0, contextTokens, error: toPlainError(e) };
          }
        }),
      );
    }
    return out;
  }

  /** Stops the running generation, ends the queued ones and frees the cached model. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0))
      this.finish(j, {
        genId: j.genId,
        text: '',
        tokens: 0,
        tokensPerSec: 0,
        reason: 'stop',
        contextTokens: this.contextOf(j.req.target),
      });
    if (this.current) this.current.stop = true;
    await this.busy;
    this.dropCache();
  }
}

/**
 * Max tokens for a model with a context of `blockSize`: a value given above the context is refused (the same rule
 * as chat and the CLI, see checkMaxTokens); none given is the default, lowered to the context of a small model.
 */
function maxTokensFor(r: Partial<SamplingSettings>, blockSize: number): number {
  if (r.maxTokens === undefined) return Math.min(DEFAULT_SAMPLING_SETTINGS.maxTokens, blockSize);
  checkMaxTokens(r.maxTokens, blockSize);
  return r.maxTokens;
}

function settingsOf(r: Partial<SamplingSettings>): SamplingSettings {
  const d = DEFAULT_SAMPLING_SETTINGS;
  return {
    temperature: r.temperature ?? d.temperature,
    topK: r.topK ?? d.topK,
    topP: r.topP ?? d.topP,
    maxTokens: r.maxTokens ?? d.maxTokens,
    seed: r.seed ?? d.seed,
  };
}
