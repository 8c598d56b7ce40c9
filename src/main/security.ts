/** Window and session hardening that does not need the `electron` module itself (testable with fakes). */

/**
 * Whether a navigation from `current` to `target` is allowed: only to the same document (the renderer routes with
 * the hash, which does not navigate). Everything else, links included, is refused.
 */
export function isNavigationAllowed(current: string, target: string): boolean {
  try {
    const a = new URL(current);
    const b = new URL(target);
    a.hash = '';
    b.hash = '';
    return a.href === b.href;
  } catch {
    return false;
  }
}

/** Whether the CSP header is added to a response: the renderer's own origin (dev server) or file:// pages. */
export function isOwnOrigin(url: string, devServerUrl?: string): boolean {
  try {
    const u = new URL(url);
    if (u.protocol === 'file:') return true;
    return devServerUrl !== undefined && u.origin === new URL(devServerUrl).origin;
  } catch {
    return false;
  }
}

/**
 * The permissions the window gets: writing text to the clipboard (the copy buttons) and notifications (a run that
 * ends says so). Camera, microphone, geolocation, clipboard reads and the rest are refused.
 */
const ALLOWED_PERMISSIONS: ReadonlySet<string> = new Set(['clipboard-sanitized-write', 'notifications']);

export function isPermissionAllowed(permission: string): boolean {
  return ALLOWED_PERMISSIONS.has(permission);
}
