import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { tool } from './reference-registry.js';

/** One token request as the server saw it (never the password). */
export interface TokenRequest {
  /** `basic` for GET with Basic credentials or none, `refresh_token` for the OAuth2 POST form. */
  grant: 'basic' | 'refresh_token';
  account: string | undefined;
  authenticated: boolean;
  service: string | null;
  scopes: string[];
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** The certificate bundle the registry verifies tokens with. */
  rootCertBundle: string;
  requests: TokenRequest[];
  close(): Promise<void>;
}

const base64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/**
 * A small implementation of Docker's token server for tests: GET /token with service and scopes,
 * Basic credentials optional, or POST with an OAuth2 refresh token (docker's identity tokens). A known user gets every action asked for; anyone else gets a token
 * with no access (as Docker Hub does for private repositories). Tokens are RS256 JWTs with the
 * signing certificate in `x5c`, which Distribution checks against `rootcertbundle`.
 */
export async function startTokenServer(dir: string, user: { username: string; password: string; refreshToken?: string }): Promise<TokenServer> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  tool('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=wharf test token issuer']);
  const key = createPrivateKey(readFileSync(keyFile));
  const cert = new X509Certificate(readFileSync(certFile));
  const x5c = cert.raw.toString('base64');
  const issuer = 'wharf-test-issuer';
  const service = 'wharf-test-registry';
  const requests: TokenRequest[] = [];

  const issue = (res: import('node:http').ServerResponse, account: string | undefined, authenticated: boolean, scopes: string[]) => {
    const access = authenticated
      ? scopes.map((scope) => {
          const last = scope.lastIndexOf(':');
          const first = scope.indexOf(':');
          return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',') };
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [x5c] };
    const claims = { iss: issuer, sub: account ?? '', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), key);
    const token = `${signingInput}.${base64url(signature)}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
        const good = form.get('grant_type') === 'refresh_token' && user.refreshToken !== undefined && form.get('refresh_token') === user.refreshToken;
        requests.push({ grant: 'refresh_token', account: good ? user.username : undefined, authenticated: good, service: form.get('service'), scopes });
        if (!good) {
          res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant' }));
          return;
        }
        issue(res, user.username, true, scopes);
      });
      return;
    }
    let account: string | undefined;
    let authenticated = false;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      account = decoded.slice(0, colon);
      if (account !== user.username || decoded.slice(colon + 1) !== user.password) {
        requests.push({ grant: 'basic', account, authenticated: false, service: url.searchParams.get('service'), scopes: url.searchParams.getAll('scope') });
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'incorrect username or password' }));
        return;
      }
      authenticated = true;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    requests.push({ grant: 'basic', account, authenticated, service: url.searchParams.get('service'), scopes });
    issue(res, account, authenticated, scopes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    rootCertBundle: certFile,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
