import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { AccessEntry } from './access.js';
import type { SigningKey } from './token-keys.js';

export interface IssuedToken {
  token: string;
  /** Seconds. */
  expiresIn: number;
  issuedAt: string;
}

/** Signs short-lived registry tokens (JWT with `kid`, `access` claims) with the built-in key. */
export class TokenIssuer {
  constructor(
    private readonly key: SigningKey,
    private readonly options: { issuer: string; service: string; expirationMs: number },
  ) {}

  get kid(): string {
    return this.key.kid;
  }

  async sign(subject: string, access: AccessEntry[]): Promise<IssuedToken> {
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = Math.max(1, Math.round(this.options.expirationMs / 1000));
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: this.key.algorithm, typ: 'JWT', kid: this.key.kid })
      .setIssuer(this.options.issuer)
      .setSubject(subject)
      .setAudience(this.options.service)
      .setIssuedAt(now)
      .setNotBefore(now - 1)
      .setExpirationTime(now + expiresIn)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
    return { token, expiresIn, issuedAt: new Date(now * 1000).toISOString() };
  }
}
