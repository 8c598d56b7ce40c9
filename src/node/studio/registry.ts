/**
 * The handler registry: every request the studio answers, declared once, next to its code, in its domain's
 * `handlers.ts` (see docs/ARCHITECTURE.md, "Adding a handler"). A declaration is the zod schema of the request's one
 * argument, the function that answers it, and, where the argument names paths or URLs, how a request from outside is
 * confined. Electron IPC, the HTTP server and the CLI all dispatch through a registry, so they validate alike.
 */
import { z } from 'zod';
import type { HandlerArg, HandlerName, HandlerResult } from '../../shared/contract';
import { ErrorCode, StudioError, toPlainError, type PlainError } from '../../shared/errors';
import type { InvokeResult } from '../../shared/contract';
import type { StudioContext } from './context';
import { requestLimits, type RequestLimits } from '../confine/requests';
import { withUrlPolicy } from '../confine/urls';

/** How a request from outside has its paths and URLs checked (and made absolute) before it runs. */
export type Confiner<A> = (arg: A, limits: RequestLimits, home: string) => A | Promise<A>;

export interface HandlerDef<A = unknown, R = unknown> {
  /** the schema of the handler's one argument (`noArgument` for a handler that takes none) */
  schema: z.ZodType<A>;
  /** answers a validated request */
  run: (arg: A, studio: StudioContext) => Promise<R> | R;
  /** for a request from outside the process: checks the paths and URLs its argument names (none: it names none) */
  confine?: Confiner<A>;
  /**
   * A request that only reads (pages poll it), or a test of the argument for one that reads unless asked to do
   * more. The HTTP server rate-limits every other request.
   */
  readOnly?: true | ((arg: A) => boolean);
}

/** A declaration of any argument and result, as the registry stores them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the registry keeps handlers of every argument type alike
export type AnyHandlerDef = HandlerDef<any, unknown>;

/** A domain's handlers, each typed by the contract's entry for its name. */
export type HandlerDefs<K extends HandlerName> = { [P in K]: HandlerDef<HandlerArg<P>, HandlerResult<P>> };

/** Declares a domain's handlers: the contract (src/shared/api) types each argument and result. */
export function defineHandlers<K extends HandlerName>(defs: HandlerDefs<K>): HandlerDefs<K> {
  return defs;
}

/** A handler that takes no argument: nothing, or (from a JSON body) an absent `arg`. */
export const noArgument = z.undefined({ error: 'this request takes no argument' });

export type ParsedRequest =
  | { ok: true; name: string; def: AnyHandlerDef; arg: unknown }
  | { ok: false; reason: 'unknown-handler' | 'bad-argument'; error: PlainError };

export type InvokeReply = InvokeResult & { reason?: 'unknown-handler' | 'bad-argument' | 'failed' };

/** Handler name -> declaration. Names are kebab-case `<domain>-<verb>`. */
export class Registry {
  private readonly defs = new Map<string, AnyHandlerDef>();

  constructor(...maps: Record<string, AnyHandlerDef>[]) {
    for (const m of maps) this.addAll(m);
  }

  /** Adds a map of handlers; a name that is already taken is an error. Returns the function that removes them. */
  addAll(map: Record<string, AnyHandlerDef>): () => void {
    const names = Object.keys(map);
    for (const name of names) {
      if (!/^[a-z0-9]+(-[a-z0-9]+)+$/.test(name))
        throw new Error(`Handler name "${name}" is not kebab-case <domain>-<verb>.`);
      if (this.defs.has(name)) throw new Error(`Handler "${name}" is declared twice.`);
    }
    for (const name of names) this.defs.set(name, map[name] as AnyHandlerDef);
    return () => {
      for (const name of names) this.defs.delete(name);
    };
  }

  /** Adds one handler (tests, extensions); returns the function that removes it. */
  add<A, R>(name: string, def: HandlerDef<A, R>): () => void {
    return this.addAll({ [name]: def as AnyHandlerDef });
  }

  has(name: unknown): name is string {
    return typeof name === 'string' && this.defs.has(name);
  }

  /** Whether a request (already validated) changes something: what the HTTP server rate-limits. */
  changesSomething(name: string, arg: unknown): boolean {
    const ro = this.defs.get(name)?.readOnly;
    return ro === undefined ? true : ro === true ? false : !ro(arg);
  }

  names(): string[] {
    return [...this.defs.keys()].sort();
  }

  /** Checks a request: a known name and an argument that its schema accepts. */
  parse(name: unknown, arg: unknown): ParsedRequest {
    const def = typeof name === 'string' ? this.defs.get(name) : undefined;
    if (typeof name !== 'string' || !def) {
      const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 100)) : `a ${typeof name}`;
      return {
        ok: false,
        reason: 'unknown-handler',
        error: {
          code: ErrorCode.NOT_FOUND,
          message: `Unknown request ${shown}.`,
          hint: `Known requests: ${this.names().join(', ')}.`,
        },
      };
    }
    const parsed = def.schema.safeParse(arg);
    if (!parsed.success) {
      return {
        ok: false,
        reason: 'bad-argument',
        error: {
          code: ErrorCode.BAD_ARGUMENT,
          message: `Bad argument for "${name}": ${z.prettifyError(parsed.error)}`,
          hint: 'Fix the named field and send the request again.',
        },
      };
    }
    return { ok: true, name, def, arg: parsed.data };
  }

  /**
   * Validates and runs a request from inside the process (the CLI, tests): the same validation as a request from
   * outside, without the confinement of paths (the caller acts with its user's own rights). Throws a StudioError.
   */
  async call(studio: StudioContext, name: string, arg: unknown): Promise<unknown> {
    const req = this.parse(name, arg);
    if (!req.ok) throw new StudioError(req.error.code, req.error.message, req.error.hint);
    return req.def.run(req.arg, studio);
  }

  /**
   * Validates, confines and runs a request from outside the process (IPC from the desktop window, HTTP from a
   * browser); never throws: a failure comes back as `{ok: false, error}` with the reason. Its paths and URLs are
   * confined to the workspace, the allowed folders and public addresses (see ./confine.ts), and the downloads it
   * starts stay under the same URL policy.
   */
  async invoke(studio: StudioContext, name: unknown, arg: unknown): Promise<InvokeReply> {
    const req = this.parse(name, arg);
    if (!req.ok) return { ok: false, error: req.error, reason: req.reason };
    try {
      const limits = requestLimits(studio.home);
      const confined = req.def.confine ? await req.def.confine(req.arg, limits, studio.home) : req.arg;
      const value = await withUrlPolicy(limits.urls, async () => req.def.run(confined, studio));
      return { ok: true, value };
    } catch (e) {
      return { ok: false, error: toPlainError(e), reason: 'failed' };
    }
  }
}
