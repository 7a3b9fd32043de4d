import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logFiles } from './auth-fixtures.js';
import { makeCertificates, makeHtpasswd, startReferenceRegistry } from './reference-registry.js';
import { startTokenServer, type TokenServer } from './token-server.js';
import { startWharf } from './wharf-process.js';

/** How a registry under test is set up; each registry maps the modes onto its own configuration. */
export type RegistryMode = 'plain' | 'htpasswd' | 'tls' | 'token' | 'tls-htpasswd';

/** A request as the registry's access log recorded it (query left off). */
export interface LoggedRequest {
  method: string;
  path: string;
}

/** A running registry, whichever it is, as the client scenarios see it. */
export interface RegistryUnderTest {
  /** `127.0.0.1:PORT` */
  host: string;
  /** The CA that signed the certificate (tls modes). */
  caFile?: string;
  /** The user that htpasswd and token modes know. */
  username?: string;
  password?: string;
  /** Requests so far, from the registry's own access log. */
  requests(): LoggedRequest[];
  /** Everything the registry wrote to its output and log files (to look for leaked secrets). */
  logs(): string;
  stop(): Promise<void>;
}

export type StartRegistry = (mode: RegistryMode) => Promise<RegistryUnderTest>;

const USER = { username: 'wharfuser', password: 'wharf-secret-pw' };

/** `wharf serve` as a child process, configured with registry:2's variable names where they mean the same. */
export const startWharfUnderTest: StartRegistry = async (mode) => {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-under-test-'));
  const env: Record<string, string> = {};
  let caFile: string | undefined;
  const auth = mode === 'htpasswd' || mode === 'tls-htpasswd' || mode === 'token';
  if (auth) {
    const htpasswd = makeHtpasswd(dir, USER.username, USER.password);
    Object.assign(env, { REGISTRY_AUTH_HTPASSWD_REALM: 'wharf-test', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd });
    // The token mode is Wharf's own issuer in front of the same htpasswd users.
    if (mode === 'token') Object.assign(env, { REGISTRY_AUTH_TOKEN_SERVICE: 'wharf-test', REGISTRY_AUTH_ISSUER_ENABLED: 'true' });
    else env.REGISTRY_AUTH = 'htpasswd';
  }
  if (mode === 'tls' || mode === 'tls-htpasswd') {
    const certs = makeCertificates(dir);
    caFile = certs.caFile;
    Object.assign(env, { REGISTRY_HTTP_TLS_CERTIFICATE: certs.certFile, REGISTRY_HTTP_TLS_KEY: certs.keyFile });
  }
  const wharf = await startWharf({ args: ['--delete'], env, tls: caFile !== undefined });
  return {
    host: wharf.host,
    ...(caFile ? { caFile } : {}),
    ...(auth ? USER : {}),
    requests: () => wharfRequests(wharf.output()),
    logs: () => [wharf.output(), ...logFiles(wharf.dataDir).map((f) => readFileSync(f, 'utf8'))].join('\n'),
    async stop() {
      await wharf.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

/** Wharf logs one JSON line per request: `{"method":…,"path":…,"msg":"request"}`. */
function wharfRequests(output: string): LoggedRequest[] {
  const requests: LoggedRequest[] = [];
  for (const line of output.split('\n')) {
    if (!line.includes('"msg":"request"')) continue;
    try {
      const entry = JSON.parse(line) as { method?: string; path?: string };
      if (entry.method && entry.path) requests.push({ method: entry.method, path: entry.path });
    } catch {
      // a line cut by the end of the buffer
    }
  }
  return requests;
}

/**
 * The reference registry, Debian's `docker-registry` (CNCF Distribution). Its token mode runs
 * the test token server of support/token-server.ts, which `tokenServer` hands back.
 */
export function distributionStarter(onTokenServer?: (tokens: TokenServer) => void): StartRegistry {
  return async (mode) => {
    let tokens: TokenServer | undefined;
    let dir: string | undefined;
    const account = { ...USER, refreshToken: 'identity-token-for-wharfuser' };
    if (mode === 'token') {
      dir = mkdtempSync(join(tmpdir(), 'wharf-token-server-'));
      tokens = await startTokenServer(dir, account);
      onTokenServer?.(tokens);
    }
    const registry = await startReferenceRegistry(
      tokens ? { mode, token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle } } : { mode },
    );
    return {
      host: registry.host,
      ...(registry.caFile ? { caFile: registry.caFile } : {}),
      ...(registry.username ? { username: registry.username, password: registry.password! } : {}),
      ...(tokens ? { username: account.username, password: account.password } : {}),
      requests: () => distributionRequests(registry.output()),
      logs: () => registry.output(),
      async stop() {
        await registry.stop();
        await tokens?.close();
        if (dir) rmSync(dir, { recursive: true, force: true });
      },
    };
  };
}

export const startDistributionUnderTest: StartRegistry = distributionStarter();

/** Distribution's access log is in the combined log format: `"GET /v2/… HTTP/1.1" 200 …`. */
function distributionRequests(output: string): LoggedRequest[] {
  return [...output.matchAll(/"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP\/[\d.]+"/g)].map((m) => ({ method: m[1]!, path: m[2]!.split('?')[0]! }));
}
