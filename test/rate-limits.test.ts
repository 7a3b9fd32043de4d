import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { raw } from './support/http.js';
import { pushImage } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const SERVICE = 'wharf-test';

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

/** One request on a connection of its own: successive ones go to the two workers in turn. */
function fresh(base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, agent: false, headers: { ...headers, Connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Sends `count` requests one after another; returns how many passed, the refusals, and the
 * most that could have passed: the burst, plus what the bucket refilled while they ran.
 */
async function burst(count: number, send: () => Promise<Answer>, limit: { rate: number; burst: number }): Promise<{ passed: number; refused: Answer[]; most: number }> {
  const started = performance.now();
  const answers: Answer[] = [];
  for (let i = 0; i < count; i += 1) answers.push(await send());
  const elapsed = (performance.now() - started) / 1000;
  const refused = answers.filter((a) => a.status === 429);
  const passed = answers.filter((a) => a.status !== 429);
  for (const answer of passed) assert.equal(answer.status, 200, answer.body);
  return { passed: passed.length, refused, most: limit.burst + Math.floor(elapsed * limit.rate) };
}

describe('rate limits: token buckets per user or address, per family, shared by two worker processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-ratelimit-'));
  let wharf: WharfProcess;
  const tokens: Record<string, string> = {};
  /** When the first request charged the address's sign-in bucket: it has refilled since. */
  let firstSignIn = 0;

  async function token(user: string | undefined, scope: string): Promise<Answer> {
    const query = new URLSearchParams({ service: SERVICE, scope });
    return fresh(wharf.url, `/auth/token?${query}`, user ? { Authorization: basic(user, `${user}-password`) } : {});
  }

  before(async () => {
    writeHtpasswd(join(dir, 'htpasswd'), { alice: 'alice-password', ci: 'ci-password' });
    writeFileSync(
      join(dir, 'config.yml'),
      `auth:
  htpasswd: { path: ${join(dir, 'htpasswd')} }
  token: { service: ${SERVICE} }
  policy:
    public: [public/*]
    rules:
      - { subject: user:alice, repository: "**", actions: [pull, push] }
      - { subject: user:ci, repository: "**", actions: [pull] }
ratelimit:
  enabled: true
  pulls: { rate: 1, burst: 6 }
  pushes: { rate: 50, burst: 100 }
  auth: { rate: 1, burst: 5 }
  overrides:
    - { user: ci, pulls: { rate: 1, burst: 14 } }
server: { workers: 2 }
`,
    );
    wharf = await startWharf({ args: [join(dir, 'config.yml')], dataDir: join(dir, 'data') });
    firstSignIn = performance.now();
    for (const user of ['alice', 'ci']) {
      const answer = await token(user, user === 'alice' ? 'repository:public/base:pull,push' : 'repository:public/base:pull');
      assert.equal(answer.status, 200, answer.body);
      tokens[user] = JSON.parse(answer.body).token;
    }
    await pushImage(wharf.url, 'public/base', 'v1', { Authorization: `Bearer ${tokens.alice}` });
  });
  after(async () => {
    await wharf?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const manifest = '/v2/public/base/manifests/v1';
  const accept = { Accept: 'application/vnd.oci.image.manifest.v1+json' };

  it('an anonymous burst of pulls from one address gets its burst, then 429 TOOMANYREQUESTS with Retry-After', async () => {
    const { passed, refused, most } = await burst(16, () => fresh(wharf.url, manifest, accept), { rate: 1, burst: 6 });
    // Each worker holding buckets of its own would let through twice the burst.
    assert.ok(passed >= 6 && passed <= most, `${passed} passed, at most ${most}`);
    assert.ok(refused.length > 0);
    for (const answer of refused) {
      assert.match(answer.body, /"code":"TOOMANYREQUESTS"/);
      assert.match(answer.body, /too many pull requests; retry after \d+ s/);
      assert.ok(Number(answer.retryAfter) >= 1, `Retry-After: ${answer.retryAfter}`);
    }
  });

  it('signed-in users are charged by name, not address, and an override gives one its own limit', async () => {
    const alice = await burst(20, () => fresh(wharf.url, manifest, { ...accept, Authorization: `Bearer ${tokens.alice}` }), { rate: 1, burst: 6 });
    assert.ok(alice.passed >= 6 && alice.passed <= alice.most, `alice: ${alice.passed} passed, at most ${alice.most}`);
    const ci = await burst(24, () => fresh(wharf.url, manifest, { ...accept, Authorization: `Bearer ${tokens.ci}` }), { rate: 1, burst: 14 });
    assert.ok(ci.passed >= 14 && ci.passed <= ci.most, `ci: ${ci.passed} passed, at most ${ci.most}`);
    assert.ok(ci.refused.length > 0);
  });

  it('pushes draw from a bucket of their own', async () => {
    const push = await raw(wharf.url, 'POST', '/v2/public/base/blobs/uploads/', { headers: { Authorization: `Bearer ${tokens.alice}` } });
    assert.equal(push.status, 202);
  });

  it('the token endpoint is limited per address', async () => {
    // Two tokens were issued at start from a bucket of five, which has refilled since.
    const { passed, refused } = await burst(10, () => token(undefined, 'repository:public/base:pull'), { rate: 1, burst: 5 - 2 });
    // Never more than the bucket holds; buckets per worker would let through eight.
    const most = Math.min(5, 5 - 2 + Math.floor((performance.now() - firstSignIn) / 1000));
    assert.ok(passed >= 3 && passed <= most, `${passed} passed, at most ${most}`);
    assert.match(refused[0]!.body, /too many sign-in requests/);
    assert.ok(Number(refused[0]!.retryAfter) >= 1);
  });
});
