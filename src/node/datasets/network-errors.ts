/**
 * What a failed download or API call is, in words a user can act on: the network error's cause (DNS, refused,
 * reset, certificates, a bad port, a proxy), whether retrying can help, and the error for an HTTP status that
 * retrying will not fix.
 */
import net from 'node:net';
import { StudioError } from '../../shared/errors';
import { DatasetErrorCode } from './errors';

export const DEFAULT_NETWORK_HINT =
  'Check the network connection and the URL (--url), or use a local copy (--file). The partial file is kept: run the same command again to resume.';

/** The error code of a fetch failure (undici puts it on `cause`, sometimes one level deeper). */
export function causeCode(e: unknown): string | undefined {
  let c: unknown = e;
  for (let i = 0; i < 4 && c && typeof c === 'object'; i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    c = (c as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The addresses a failed connection tried (undici puts them on the cause, or on each error of an AggregateError). */
function addressesOf(e: unknown): string[] {
  const out: string[] = [];
  let c: unknown = e;
  for (let i = 0; i < 4 && c && typeof c === 'object'; i++) {
    const o = c as { address?: unknown; errors?: unknown; cause?: unknown };
    if (typeof o.address === 'string') out.push(o.address);
    if (Array.isArray(o.errors))
      for (const x of o.errors)
        if (typeof (x as { address?: unknown })?.address === 'string') out.push((x as { address: string }).address);
    c = o.cause;
  }
  return out;
}

/** Whether a host (a URL's hostname, brackets removed) is this machine: localhost, 127/8 or ::1. */
function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost') || h === '::1') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return !!mapped && mapped[1]!.startsWith('127.');
}

/** TLS errors about the server's certificate: another attempt gets the same certificate. */
const CERT_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/**
 * Words for a network failure, whether another attempt can succeed, and (for the permanent ones) what to do.
 * `url` is the address asked for: a refused connection to this machine means that nothing listens on that port,
 * which waiting does not change, while another machine's server may be restarting.
 */
export function describeNetworkError(e: unknown, url: string): { what: string; permanent: boolean; hint?: string } {
  const host = hostOf(url);
  const code = causeCode(e);
  if (code && CERT_CODES.has(code)) {
    return {
      what: `the TLS certificate of "${host}" was rejected (${code})`,
      permanent: true,
      hint: "The server's certificate is not valid for this machine (expired, self-signed, or for another name); a proxy that intercepts TLS needs its certificate added (NODE_EXTRA_CA_CERTS=file.pem). Check the URL (--url) or the endpoint (HF_ENDPOINT / --endpoint).",
    };
  }
  if (!code && /\bbad port\b/i.test(messageChain(e))) {
    // fetch refuses some ports outright (the browsers' list: 1-25, 6000, ...), before any connection
    let port = '';
    try {
      port = new URL(url).port;
    } catch {
      // not a URL: no port to name
    }
    return {
      what: `fetch does not connect to port ${port || '(the default)'} of "${host}" (a blocked port, as in browsers)`,
      permanent: true,
      hint: 'Serve the file on another port (e.g. 8000) and give that URL (--url / HF_ENDPOINT / --endpoint).',
    };
  }
  switch (code) {
    case 'ENOTFOUND':
      return {
        what: `the host name "${host}" could not be resolved (DNS lookup failed: ENOTFOUND)`,
        permanent: true,
        hint: "Check the host name in the URL (--url) or the endpoint (HF_ENDPOINT / --endpoint), and this machine's DNS; without a network, use a local copy (--file).",
      };
    case 'EAI_AGAIN':
      return {
        what: `the host name "${host}" could not be resolved (DNS lookup failed: EAI_AGAIN, no answer from the name server)`,
        permanent: false,
      };
    case 'ECONNREFUSED': {
      let hostname = host;
      try {
        hostname = new URL(url).hostname;
      } catch {
        // not a URL: judged by what was given
      }
      const local = isLoopbackHost(hostname) || addressesOf(e).some(isLoopbackHost);
      return local
        ? {
            what: `the connection to "${host}" was refused (ECONNREFUSED): nothing listens on that port of this machine`,
            permanent: true,
            hint: `Start the server that should answer at ${host}, or check the port in the URL (--url) or the endpoint (HF_ENDPOINT / --endpoint).`,
          }
        : { what: `the connection to "${host}" was refused (ECONNREFUSED)`, permanent: false };
    }
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return {
        what: `the connection to "${host}" was closed before the download finished (${code})`,
        permanent: false,
      };
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return { what: `the connection to "${host}" timed out (${code})`, permanent: false };
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
      return { what: `"${host}" is unreachable from this machine (${code})`, permanent: false };
    default:
      return { what: `${messageChain(e)}${code ? ` (${code})` : ''}`, permanent: false };
  }
}

/** "fetch failed: bad port": the messages of an error and its causes (undici's own message says little). */
function messageChain(e: unknown): string {
  const parts: string[] = [];
  let c: unknown = e;
  for (let i = 0; i < 4 && c; i++) {
    const m = c instanceof Error ? c.message : String(c);
    if (m && !parts.includes(m)) parts.push(m);
    c = c instanceof Error ? c.cause : undefined;
  }
  return parts.join(': ');
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** The error for an HTTP status that retrying will not fix. */
export function statusError(status: number, url: string, networkHint: string | undefined): StudioError {
  if (status === 401 || status === 403) {
    return new StudioError(
      DatasetErrorCode.auth,
      `The server refused ${url} with HTTP ${status} (${status === 401 ? 'unauthorized' : 'forbidden'}).`,
      "The file needs an access token, or the token given has no access to it. For Hugging Face, create a read token at https://huggingface.co/settings/tokens, accept the dataset's terms on its page if it has any, and set HF_TOKEN (or the token in Settings).",
    );
  }
  if (status === 404 || status === 410) {
    return new StudioError(
      DatasetErrorCode.notFound,
      `${url} does not exist on the server (HTTP ${status}).`,
      'Check the URL (--url) or the endpoint (--endpoint / HF_ENDPOINT): a mirror may not hold this file.' +
        (networkHint ? ` ${networkHint}` : ''),
    );
  }
  return new StudioError(
    DatasetErrorCode.network,
    `The server answered HTTP ${status} for ${url}.`,
    networkHint ?? DEFAULT_NETWORK_HINT,
  );
}

/** A StudioError for a network failure outside downloadFile (API listings), with the same words. */
export function networkError(url: string, e: unknown, hint?: string): StudioError {
  if (e instanceof StudioError) return e;
  const net = describeNetworkError(e, url);
  return new StudioError(
    DatasetErrorCode.network,
    `Could not reach ${url}: ${net.what}.`,
    net.permanent && net.hint ? [net.hint, hint].filter(Boolean).join(' ') : (hint ?? DEFAULT_NETWORK_HINT),
    { cause: e },
  );
}
