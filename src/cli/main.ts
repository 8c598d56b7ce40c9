import { ErrorCode, StudioError, toPlainError } from '../shared/errors';
import { decayGroups, flopsPerToken, paramCount, type GPTConfig } from '../core/model/config';
import { decode, encode, EOT, StreamDecoder } from '../core/tokenizer';
import { checkMaxTokens, generateRows, roomAfter, type EndReason } from '../core/sampling';
import { describeEngines } from '../node/engines';
import { loadGpt2Weights } from '../node/models/weights';
import { common, defaultIo, needWeights, num, openModel, parse, type CliIo } from './common';

export type { CliIo };

const USAGE = `gpt2-studio: train, sample and evaluate GPT-2 from the command line

Usage:
  gpt2-studio sample --weights W [--prompt TEXT] [--num 5] [--max-new-tokens 30] [--top-k 50] [--top-p 1]
                     [--temperature 1] [--seed 42] [--engine E] [--home DIR] [--json]
  gpt2-studio score  --weights W (--text TEXT | --tokens 1,2,3) [--engine E] [--home DIR] [--json]
  gpt2-studio info   --weights W [--home DIR] [--json]
  gpt2-studio hellaswag (--weights W | --run ID [--step N]) [--data FILE] [--limit N] [--engine E] [--strict]
                     [--home DIR] [--json]
  gpt2-studio prepare SOURCE [--name N] [--url U | --file F] [--max-files K] [--max-tokens M] [--shard-size S]
                     [--endpoint URL] [--overwrite] [--home DIR]
                     (sources: builtin, tinyshakespeare, fineweb-edu-10bt, hellaswag, local, sft)
  gpt2-studio datasets [--home DIR] [--json]
  gpt2-studio train  (--config FILE | --preset NAME) [--set key=value ...] [--name N] [--home DIR] [--json]
  gpt2-studio resume RUN_ID [--home DIR] [--json]
  gpt2-studio stop   RUN_ID [--home DIR]
  gpt2-studio runs   [--home DIR] [--json]
  gpt2-studio export RUN_ID [--step N] --out model.safetensors [--home DIR]
  gpt2-studio report RUN_ID [--out FILE|DIR|-] [--home DIR]
                     (the run as one HTML page to share: facts, curves, samples, config, log)
  gpt2-studio import PATH [--name N] [--home DIR] [--json]
  gpt2-studio models [--home DIR] [--json]
  gpt2-studio engines [--json]
  gpt2-studio call   NAME [JSON] [--home DIR]
                     (any request of the service, validated as the app's are; "call list" names them)
  gpt2-studio serve  [--port P] [--host 127.0.0.1] [--token T] [--home DIR]
                     (without --port, a free port; the address to open is printed)

A sample ends at <|endoftext|>, after --max-new-tokens, or when the model's context (block_size) is full; it says
which. --max-new-tokens above the context is refused.

W is a .safetensors file, a folder with model.safetensors (and config.json when present) in the Hugging Face
GPT-2 layout, or a name that "gpt2-studio models" lists: model:ID (imported) or ckpt:RUN_ID:STEP (a checkpoint).
Engines (--engine, and a run's "engine"): auto (default: the fastest that passes its parity check), native-cuda,
native-webgpu (Metal, Vulkan, D3D12; never picked by auto on a software renderer), native-cpu, tfjs;
"gpt2-studio engines" says which this machine has. The TF.js backend can be forced with
--backend (tensorflow-gpu, tensorflow, wasm, cpu) or GPT2_STUDIO_TFJS_BACKEND.
The workspace is --home DIR, else GPT2_STUDIO_HOME, else ~/.gpt2-studio.
`;

function describeConfig(c: GPTConfig) {
  return {
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_embd: c.nEmbd,
    block_size: c.blockSize,
    vocab_size: c.vocabSize,
    padded_vocab_size: c.paddedVocabSize,
  };
}

async function cmdSample(argv: string[], io: CliIo): Promise<number> {
  const a = parse(
    argv,
    {
      ...common,
      prompt: { type: 'string', default: "Hello, I'm a language model," },
      num: { type: 'string', default: '5' },
      'max-new-tokens': { type: 'string', default: '30' },
      'top-k': { type: 'string', default: '50' },
      'top-p': { type: 'string', default: '1' },
      temperature: { type: 'string', default: '1' },
      seed: { type: 'string', default: '42' },
    },
    'sample',
  );
  if (a.help) return usage(io);
  const numSeq = num(a.num, 'num', { int: true, min: 1, max: 64 })!;
  const opts = {
    maxNewTokens: num(a['max-new-tokens'], 'max-new-tokens', { int: true, min: 1 })!,
    topK: num(a['top-k'], 'top-k', { int: true, min: 0 })!,
    topP: num(a['top-p'], 'top-p', { min: 0, max: 1 })!,
    temperature: num(a.temperature, 'temperature', { min: 0 })!,
    seed: num(a.seed, 'seed', { int: true })!,
  };
  const { model } = await openModel(needWeights(a.weights, 'sample', a.home), a.engine, a.backend, io);
  try {
    const context = model.config.blockSize;
    // the same rule as chat: max tokens above the context is refused; within it, the prompt shares the context
    checkMaxTokens(opts.maxNewTokens, context, '--max-new-tokens');
    const prompt = encode(a.prompt);
    const room = roomAfter(prompt.length, context);
    if (opts.maxNewTokens > room) {
      io.err(
        `note: the model's context is ${context} tokens; after the ${prompt.length}-token prompt, each sample ends at ${room} new tokens at most (context full)\n`,
      );
    }
    const samples: { text: string; tokens: number[]; tokensPerSec: number; reason: EndReason }[] = [];
    // one row at a time, so that each streams to the terminal as it is generated
    for (let i = 0; i < numSeq; i++) {
      const sd = new StreamDecoder();
      if (!a.json) io.out(`> ${a.prompt}`);
      const t0 = performance.now();
      const row = (
        await generateRows(model, prompt, {
          ...opts,
          seed: opts.seed + i,
          numSequences: 1,
          stopTokens: [EOT],
          onToken: (_row, tok) => {
            if (!a.json) io.out(sd.push(tok));
          },
        })
      )[0]!;
      const dt = (performance.now() - t0) / 1000;
      if (!a.json) {
        io.out(sd.flush() + '\n');
        io.err(`(sample ${i + 1}: ${endReasonText(row.reason, context)})\n`);
      }
      samples.push({
        text: a.prompt + decode(row.tokens),
        tokens: row.tokens,
        tokensPerSec: row.tokens.length / dt,
        reason: row.reason,
      });
    }
    if (a.json)
      io.out(
        JSON.stringify({ prompt: a.prompt, promptTokens: prompt, ...opts, contextTokens: context, samples }) + '\n',
      );
    else io.err(`${(samples.reduce((s, x) => s + x.tokensPerSec, 0) / samples.length).toFixed(1)} tokens/s\n`);
    return 0;
  } finally {
    model.dispose();
  }
}

/** Why a sample ended, in the words the app uses. */
function endReasonText(reason: EndReason, context: number): string {
  switch (reason) {
    case 'eot':
      return 'ended at end of text';
    case 'length':
      return 'max tokens reached';
    case 'context':
      return `context full (${context} tokens)`;
    case 'stop':
      return 'stopped';
  }
}

function parseTokenList(s: string): number[] {
  const parts = s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  return parts.map((p, i) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0 || n >= 50257) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `--tokens item ${i + 1} ("${p}") is not a GPT-2 token id.`,
        'Pass comma-separated integers in 0..50256, e.g. --tokens 15496,995.',
      );
    }
    return n;
  });
}

async function cmdScore(argv: string[], io: CliIo): Promise<number> {
  const a = parse(argv, { ...common, text: { type: 'string' }, tokens: { type: 'string' } }, 'score');
  if (a.help) return usage(io);
  if ((a.text === undefined) === (a.tokens === undefined)) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      'score needs exactly one of --text or --tokens.',
      'Example: --text "Hello world" or --tokens 15496,995.',
    );
  }
  const tokens = a.tokens !== undefined ? parseTokenList(a.tokens) : encode(a.text!);
  if (tokens.length < 2) {
    throw new StudioError(
      ErrorCode.BAD_ARGUMENT,
      `score needs at least 2 tokens; got ${tokens.length}.`,
      'Each loss is that of a next token, so give two or more.',
    );
  }
  const { model } = await openModel(needWeights(a.weights, 'score', a.home), a.engine, a.backend, io);
  try {
    const T = tokens.length - 1;
    if (T > model.config.blockSize) {
      throw new StudioError(
        ErrorCode.BAD_ARGUMENT,
        `The text has ${tokens.length} tokens; the model scores at most ${model.config.blockSize + 1} at once.`,
        'Shorten the text.',
      );
    }
    const res = await model.tokenLosses({
      B: 1,
      T,
      inputs: Int32Array.from(tokens.slice(0, -1)),
      targets: Int32Array.from(tokens.slice(1)),
    });
    const losses = Array.from(res);
    const meanLoss = losses.reduce((s, x) => s + x, 0) / losses.length;
    if (a.json) {
      io.out(JSON.stringify({ tokens, losses, meanLoss }) + '\n');
    } else {
      io.out('  #  token  loss      text\n');
      losses.forEach((l, i) =>
        io.out(
          `${String(i + 1).padStart(3)}  ${String(tokens[i + 1]).padStart(5)}  ${l.toFixed(4).padStart(8)}  ${JSON.stringify(decode([tokens[i + 1]!]))}\n`,
        ),
      );
      io.out(
        `mean loss ${meanLoss.toFixed(4)} (perplexity ${Math.exp(meanLoss).toFixed(2)}) over ${losses.length} tokens\n`,
      );
    }
    return 0;
  } finally {
    model.dispose();
  }
}

async function cmdInfo(argv: string[], io: CliIo): Promise<number> {
  const a = parse(argv, common, 'info');
  if (a.help) return usage(io);
  const w = loadGpt2Weights(needWeights(a.weights, 'info', a.home));
  const c = w.config;
  const info = {
    file: w.file,
    config: describeConfig(c),
    parameters: paramCount(c),
    decayGroups: decayGroups(c),
    flopsPerToken: flopsPerToken(c),
    notes: w.notes,
  };
  if (a.json) {
    io.out(JSON.stringify(info) + '\n');
  } else {
    const g = info.decayGroups;
    io.out(
      [
        `file: ${info.file}`,
        `config: n_layer ${c.nLayer}, n_head ${c.nHead}, n_embd ${c.nEmbd}, block_size ${c.blockSize}, vocab ${c.vocabSize} (padded ${c.paddedVocabSize})`,
        `parameters: ${info.parameters.toLocaleString('en-US')}`,
        `num decayed parameter tensors: ${g.decayTensors}, with ${g.decayParams.toLocaleString('en-US')} parameters`,
        `num non-decayed parameter tensors: ${g.noDecayTensors}, with ${g.noDecayParams.toLocaleString('en-US')} parameters`,
        `training FLOPs per token: ${(info.flopsPerToken / 1e9).toFixed(3)} GFLOP (forward ${(info.flopsPerToken / 3e9).toFixed(3)})`,
        ...w.notes.map((n) => `note: ${n}`),
      ].join('\n') + '\n',
    );
  }
  return 0;
}

async function cmdEngines(argv: string[], io: CliIo): Promise<number> {
  const a = parse(argv, { json: common.json, help: common.help, home: common.home }, 'engines');
  if (a.help) return usage(io);
  const list = await describeEngines();
  if (a.json) io.out(JSON.stringify(list) + '\n');
  else {
    for (const e of list) {
      io.out(`${e.name.padEnd(12)} ${e.available ? 'available  ' : 'unavailable'} ${e.detail}\n`);
      for (const n of e.notes) io.out(`${''.padEnd(12)}   - ${n}\n`);
    }
  }
  return 0;
}

function usage(io: CliIo): number {
  io.out(USAGE);
  return 0;
}

/** Runs the CLI; returns the exit code. Errors are printed with their hint, never as a bare stack. */
export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'sample':
        return await cmdSample(rest, io);
      case 'score':
        return await cmdScore(rest, io);
      case 'info':
        return await cmdInfo(rest, io);
      case 'engines':
        return await cmdEngines(rest, io);
      case 'train':
      case 'resume':
      case 'stop':
      case 'runs':
      case 'export': {
        const m = await import('./runs');
        const f = {
          train: m.trainCommand,
          resume: m.resumeCommand,
          stop: m.stopCommand,
          runs: m.runsCommand,
          export: m.exportCommand,
        }[cmd];
        return await f(rest, io);
      }
      case 'prepare':
      case 'datasets': {
        const m = await import('./prepare');
        return await (cmd === 'prepare' ? m.prepareCommand(rest, io) : m.datasetsCommand(rest, io));
      }
      case 'hellaswag': {
        const { hellaswagCommand } = await import('./hellaswag');
        return await hellaswagCommand(rest, io);
      }
      case 'import':
      case 'models': {
        const m = await import('./models');
        return await (cmd === 'import' ? m.importCommand(rest, io) : m.modelsCommand(rest, io));
      }
      case 'report': {
        const { reportCommand } = await import('./report');
        return await reportCommand(rest, io);
      }
      case 'call': {
        const { callCommand } = await import('./call');
        return await callCommand(rest, io);
      }
      case 'serve': {
        const { serveCommand } = await import('./serve');
        await serveCommand(rest);
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return usage(io);
      default:
        throw new StudioError(
          ErrorCode.BAD_ARGUMENT,
          `Unknown command "${cmd}".`,
          'Run "gpt2-studio --help" for the list of commands.',
        );
    }
  } catch (e) {
    const p = toPlainError(e);
    io.err(`error: ${p.message}\n`);
    if (p.hint) io.err(`hint: ${p.hint}\n`);
    if (p.code === ErrorCode.INTERNAL && p.stack) io.err(p.stack + '\n');
    return p.code === ErrorCode.BAD_ARGUMENT ? 2 : 1;
  }
}
