/** One challenge of a `WWW-Authenticate` header (RFC 7235). */
export interface AuthChallenge {
  /** Lower-cased: `basic`, `bearer`. */
  scheme: string;
  /** Parameter names lower-cased, values unquoted. */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` value, which may carry several challenges:
 * `Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull", Basic realm="x"`.
 * Unparseable tails are dropped rather than thrown: a registry's odd header must not hide the others.
 */
export function parseChallenges(value: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < value.length && (value[i] === ' ' || value[i] === '\t')) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < value.length && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(value[i]!)) i++;
    return value.slice(start, i);
  };
  while (i < value.length) {
    skipSpace();
    while (value[i] === ',') {
      i++;
      skipSpace();
    }
    const scheme = readToken();
    if (!scheme) break;
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    // Parameters follow until a token that is not followed by '=' (the next scheme).
    for (;;) {
      skipSpace();
      const save = i;
      const name = readToken();
      skipSpace();
      if (!name || value[i] !== '=') {
        i = save;
        break;
      }
      i++;
      skipSpace();
      let param = '';
      if (value[i] === '"') {
        i++;
        while (i < value.length && value[i] !== '"') {
          if (value[i] === '\\' && i + 1 < value.length) i++;
          param += value[i];
          i++;
        }
        i++;
      } else {
        // Unquoted values should be tokens, but some servers send bare URLs: read to the next comma.
        const start = i;
        while (i < value.length && value[i] !== ',' && value[i] !== ' ' && value[i] !== '\t') i++;
        param = value.slice(start, i);
      }
      challenge.params[name.toLowerCase()] = param;
      skipSpace();
      if (value[i] === ',') {
        i++;
        continue;
      }
      break;
    }
  }
  return challenges;
}

/** A repository scope as the token spec writes it: `repository:NAME:pull,push`. */
export function repositoryScope(repository: string, actions: string[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

/**
 * Merges scopes that name the same resource (`repository:a:pull` + `repository:a:push`
 * becomes `repository:a:pull,push`), sorted so that equal sets give equal cache keys.
 */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of scopes) {
    if (!scope) continue;
    const lastColon = scope.lastIndexOf(':');
    if (lastColon <= 0) continue;
    const resource = scope.slice(0, lastColon);
    const actions = byResource.get(resource) ?? new Set<string>();
    for (const action of scope.slice(lastColon + 1).split(',')) if (action) actions.add(action);
    byResource.set(resource, actions);
  }
  return [...byResource.entries()].map(([resource, actions]) => `${resource}:${[...actions].sort().join(',')}`).sort();
}

/** The challenge a client answers: bearer when offered (it carries scopes), else basic; undefined for others. */
export function pickChallenge(challenges: AuthChallenge[]): AuthChallenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}
