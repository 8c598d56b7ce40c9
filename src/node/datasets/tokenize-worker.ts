/**
 * A tokenizer worker thread (started through tokenize-worker.mjs, which registers the TypeScript loader).
 * It answers each `encode` request with the GPT-2 tokens of its pieces as one Uint16Array, transferred, not copied.
 * `<|endoftext|>` inside a text is plain text (tiktoken's encode_ordinary); a piece with `eot` gets the token 50256
 * before it.
 */
import { parentPort } from 'node:worker_threads';
import { toPlainError } from '../../shared/errors';
import { EOT, encode } from '../../core/tokenizer';
import type { FromWorker, ToWorker } from './pool';

const port = parentPort;
if (!port) throw new Error('tokenize-worker must run in a worker thread');

function encodePieces(pieces: ToWorker['pieces']): Uint16Array<ArrayBuffer> {
  const parts: number[][] = [];
  let n = 0;
  for (const p of pieces) {
    const ids = encode(p.text);
    if (p.eot) n++;
    n += ids.length;
    parts.push(ids);
  }
  const out = new Uint16Array(n);
  let o = 0;
  pieces.forEach((p, i) => {
    if (p.eot) out[o++] = EOT;
    const ids = parts[i]!;
    for (let j = 0; j < ids.length; j++) out[o++] = ids[j]!;
  });
  return out;
}

port.on('message', (m: ToWorker) => {
  try {
    const tokens = encodePieces(m.pieces);
    const reply: FromWorker = { type: 'encoded', id: m.id, tokens };
    port.postMessage(reply, [tokens.buffer]);
  } catch (e) {
    const reply: FromWorker = { type: 'failed', id: m.id, error: toPlainError(e) };
    port.postMessage(reply);
  }
});

const ready: FromWorker = { type: 'ready' };
port.postMessage(ready);
