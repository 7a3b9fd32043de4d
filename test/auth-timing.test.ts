import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HtpasswdFile } from '../src/auth/htpasswd.js';
import { isBcryptHash, verifyPassword } from '../src/auth/passwords.js';
import { SecretWatch, basic } from './support/auth-fixtures.js';
import { raw } from './support/http.js';
import { requireTool } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const watch = new SecretWatch();
const ROOT_PW = watch.credentials('root', 'root-password-1');
const LOW_PW = watch.credentials('low', 'low-cost-password-1');
const HIGH_PW = watch.credentials('high', 'high-cost-password-1');
const API_PW = watch.credentials('apiuser', 'api-user-password-1');
const SAMPLES = 30;
const WARM_UP = 3;

let dir: string;
let wharf: WharfProcess;

/** An htpasswd line from the real tool at a given bcrypt cost (`-C`; the tool's default is 5). */
function htpasswd(user: string, password: string, cost?: number): string {
  return execFileSync('htpasswd', ['-Bbn', ...(cost === undefined ? [] : ['-C', String(cost)]), user, password], { encoding: 'utf8' }).trim();
}

before(async () => {
  requireTool('htpasswd');
  dir = mkdtempSync(join(tmpdir(), 'wharf-timing-'));
  // Mixed costs, as a file kept by hand over the years has: the tool's default 5, and 11 above Wharf's own 10.
  writeFileSync(join(dir, 'htpasswd'), `${[htpasswd('root', ROOT_PW), htpasswd('low', LOW_PW), htpasswd('high', HIGH_PW, 11)].join('\n')}\n`);
  writeFileSync(
    join(dir, 'config.yml'),
    `auth:
  htpasswd: { path: ${join(dir, 'htpasswd')} }
  throttle: { maxfailures: 1000, maxfailuresperaddress: 100000 }
  policy: { admins: [root] }
log: { accesslog: { disabled: true } }
`,
  );
  wharf = watch.server(await startWharf({ args: [join(dir, 'config.yml')] }));
  // A user managed through the admin API, hashed by Wharf (cost 10).
  const created = await raw(wharf.url, 'POST', '/admin/v1/users', {
    headers: { Authorization: basic('root', ROOT_PW), 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'apiuser', password: API_PW }),
  });
  assert.equal(created.status, 201, created.body.toString());
});

after(async () => {
  await watch.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Milliseconds for one refused sign-in, measured at the client as an attacker would. */
async function refusedLogin(user: string, attempt: number): Promise<number> {
  const started = performance.now();
  const res = await raw(wharf.url, 'GET', '/v2/', { headers: { Authorization: basic(user, `wrong-password-${attempt}`) } });
  const elapsed = performance.now() - started;
  assert.equal(res.status, 401, `${user}: ${res.status}`);
  return elapsed;
}

test('a wrong password takes as long for a user who does not exist as for users of any bcrypt cost', async () => {
  // Sanity: these accounts exist and their passwords work (so the comparisons below are against real users).
  for (const [user, password] of [['low', LOW_PW], ['high', HIGH_PW], ['apiuser', API_PW]] as const) {
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: { Authorization: basic(user, password) } })).status, 200, user);
  }
  const groups = { unknown: 'nobody-here', low: 'low', high: 'high', apiuser: 'apiuser' };
  const times: Record<keyof typeof groups, number[]> = { unknown: [], low: [], high: [], apiuser: [] };
  // Interleaved round by round, so a slow moment of the machine falls on every group alike.
  for (let round = 0; round < WARM_UP + SAMPLES; round += 1) {
    const order = (Object.keys(groups) as Array<keyof typeof groups>).sort(() => Math.random() - 0.5);
    for (const group of order) {
      const ms = await refusedLogin(groups[group], round);
      if (round >= WARM_UP) times[group].push(ms);
    }
  }
  const medians = Object.fromEntries(Object.entries(times).map(([group, values]) => [group, Math.round(median(values) * 10) / 10]));
  for (const group of ['low', 'high', 'apiuser'] as const) {
    const [a, b] = [medians.unknown!, medians[group]!];
    // Generous, for busy CI machines: without equal costs the gap is about 97 % (4 ms against 170 ms).
    assert.ok(Math.abs(a - b) / Math.max(a, b) <= 0.4, `median of refused logins: unknown user ${a} ms, ${group} ${b} ms (${JSON.stringify(medians)})`);
  }
});

test('an htpasswd hash of a cost bcrypt refuses counts as no hash, and does not set the cost of failures', async () => {
  const broken = `$2y$99$${'a'.repeat(53)}`;
  assert.equal(isBcryptHash(broken), false);
  assert.equal(await verifyPassword('anything', broken, { failureCost: 4 }), false);
  const file = join(dir, 'broken-htpasswd');
  writeFileSync(file, `broken:${broken}\n${htpasswd('low', LOW_PW)}\n`);
  assert.equal(new HtpasswdFile(file).maxCost(), 5);
});

test('no password of this suite appears in any log it wrote', () => {
  assert.ok(watch.sources() >= 1);
  assert.deepEqual(watch.leaks(), []);
});
