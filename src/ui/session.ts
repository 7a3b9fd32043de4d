import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const SESSION_COOKIE = 'wharf_session';
/** How long a sign-in lasts. */
export const SESSION_TTL_MS = 12 * 3_600_000;

/** What the session cookie carries: a random id (for CSRF tokens), the signed-in user, when it ends. */
export interface Session {
  id: string;
  user?: string;
  expires: number;
}

/**
 * Signed, stateless session cookies: every serving process checks them with the same key (kept
 * in the data directory, made by the first process that needs it), so a sign-in holds whichever
 * worker answers. The user is resolved again on every request, so a removed account or a
 * changed policy takes effect at once.
 */
export class SessionKeys {
  private constructor(private readonly key: Buffer) {}

  /** The key stored at `path`, created there if missing. */
  static load(path: string): SessionKeys {
    try {
      return new SessionKeys(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64url'));
    } catch {
      // Missing: make one; `wx` loses a race with another process cleanly, then read theirs.
      try {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, randomBytes(32).toString('base64url'), { flag: 'wx', mode: 0o600 });
      } catch {
        // Another process made it first (or storage is read-only: then the read below fails too).
      }
      return new SessionKeys(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64url'));
    }
  }

  /** Keys for one process only (sessions then hold only on the process that made them). */
  static ephemeral(): SessionKeys {
    return new SessionKeys(randomBytes(32));
  }

  private mac(purpose: string, value: string): string {
    return createHmac('sha256', this.key).update(purpose).update('\0').update(value).digest('base64url');
  }

  seal(session: Session): string {
    const body = Buffer.from(JSON.stringify(session)).toString('base64url');
    return `${body}.${this.mac('session', body)}`;
  }

  /** The session a cookie value carries; undefined when it is forged, malformed or expired. */
  open(value: string | undefined, now = Date.now()): Session | undefined {
    if (!value) return undefined;
    const dot = value.indexOf('.');
    if (dot <= 0) return undefined;
    const body = value.slice(0, dot);
    if (!equal(value.slice(dot + 1), this.mac('session', body))) return undefined;
    try {
      const session = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Session;
      if (typeof session.id !== 'string' || typeof session.expires !== 'number' || session.expires <= now) return undefined;
      if (session.user !== undefined && typeof session.user !== 'string') return undefined;
      return session;
    } catch {
      return undefined;
    }
  }

  /** The CSRF token of a session: tied to its id, so it changes at every sign-in and sign-out. */
  csrfToken(session: Session): string {
    return this.mac('csrf', session.id);
  }

  checkCsrf(session: Session, token: string | undefined): boolean {
    return token !== undefined && equal(token, this.csrfToken(session));
  }
}

export function newSession(user?: string, now = Date.now()): Session {
  return { id: randomBytes(18).toString('base64url'), ...(user !== undefined ? { user } : {}), expires: now + SESSION_TTL_MS };
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** One cookie's value from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The Set-Cookie value: HttpOnly, SameSite=Lax (links from elsewhere keep the sign-in; forms need the CSRF token), Secure under TLS. */
export function sessionCookie(value: string, options: { path: string; secure: boolean; maxAgeSeconds: number }): string {
  return `${SESSION_COOKIE}=${value}; Path=${options.path}; HttpOnly; SameSite=Lax; Max-Age=${options.maxAgeSeconds}${options.secure ? '; Secure' : ''}`;
}
