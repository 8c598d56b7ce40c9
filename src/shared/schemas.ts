/**
 * zod schemas for every request argument. Every transport (IPC, HTTP, CLI) validates a request with these before
 * the Studio service sees it.
 */
import { z } from 'zod';
import type { HandlerArg, HandlerName } from './contract';

/** A handler that takes no argument: nothing, or (from a JSON body) an absent `arg`. */
const noArgument = z.undefined({ error: 'this request takes no argument' });

/**
 * Request name -> schema of its argument. The mapped type makes a missing name, an extra name, or a schema whose
 * output differs from the handler's parameter a compile error.
 */
export const requestSchemas: { [K in HandlerName]: z.ZodType<HandlerArg<K>> } = {
  'app-info': noArgument,
  'engines-list': noArgument,
};

export const handlerNames = Object.keys(requestSchemas) as HandlerName[];

export function isHandlerName(name: unknown): name is HandlerName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(requestSchemas, name);
}

/** The JSON body of `POST /api/invoke/<name>`: `{arg}`, where `arg` is absent for a request without argument. */
export const httpInvokeBodySchema = z.object({ arg: z.unknown().optional() }).strict();
