import type { AccessEntry } from './access.js';
import type { PermissionRecord } from '../metadata/account-store.js';

/** Robot account names carry this prefix in Basic credentials and token subjects (as in Harbor). */
export const ROBOT_PREFIX = 'robot$';

/**
 * Who is asking. A bearer token narrows what a known identity may do to the token's `access`
 * claims; an external issuer's token names a subject Wharf may not know at all.
 */
export type Identity =
  | { kind: 'anonymous'; token?: TokenGrant }
  | { kind: 'user'; name: string; groups: string[]; token?: TokenGrant }
  | { kind: 'robot'; name: string; permissions: PermissionRecord[]; expiresAt?: number; token?: TokenGrant }
  /** A valid token from an external issuer whose subject is not a Wharf account. */
  | { kind: 'external'; name: string; token: TokenGrant };

export interface TokenGrant {
  access: AccessEntry[];
  /** Issued by Wharf's own issuer (so the subject is one of ours and policy can be consulted). */
  builtIn: boolean;
}

export const ANONYMOUS: Identity = { kind: 'anonymous' };

/** The name recorded as actor in history and the audit log; undefined for anonymous. */
export function actorOf(identity: Identity): string | undefined {
  switch (identity.kind) {
    case 'anonymous':
      return undefined;
    case 'robot':
      return `${ROBOT_PREFIX}${identity.name}`;
    default:
      return identity.name;
  }
}
