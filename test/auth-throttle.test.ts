import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SqliteAccountStore } from '../src/metadata/sqlite/sqlite-account-store.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { SecretWatch, basic, writeHtpasswd } from './support/auth-fixtures.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const cleanup: Array<() => unknown> = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-throttle-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('failed-login counters in the account store', () => {
  const window = (now: number) => ({ now, windowMs: 60_000 });

  test('are shared by every connection, and never let more failures through than the limit', async () => {
    const path = join(tempDir(), 'wharf.db');
    const metadata = new SqliteMetadataStore({ path });
    // Two connections to one file, as two worker processes (or replicas) have.
    const here = new SqliteAccountStore({ path });
    const there = new SqliteAccountStore({ path });
    try {
      const now = Date.now();
      const limits = [
        { key: 'pair', max: 4 },
        { key: 'address', max: 100 },
      ];
      const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? there : here).countLoginFailure(limits, window(now))));
      assert.equal(outcomes.filter((o) => o === undefined).length, 4, 'exactly the limit was counted');
      const refused = outcomes.find((o) => o !== undefined)!;
      assert.deepEqual(refused.get('pair'), { failures: 4, startedAt: now });
      assert.deepEqual(await here.loginFailures(['pair', 'address', 'other'], window(now)), new Map([
        ['pair', { failures: 4, startedAt: now }],
        ['address', { failures: 4, startedAt: now }],
      ]));
      // A success takes its own charge back from the address and clears the pair.
      await there.forgiveLoginFailures({ clear: ['pair'], refund: ['address'] });
      assert.deepEqual(await here.loginFailures(['pair', 'address'], window(now)), new Map([['address', { failures: 3, startedAt: now }]]));
      // Once its window has passed, a counter is forgotten and the next failure starts a new one.
      const later = now + 60_000;
      assert.deepEqual(await here.loginFailures(['address'], window(later)), new Map());
      assert.equal(await here.countLoginFailure([{ key: 'address', max: 1 }], window(later)), undefined);
      assert.deepEqual(await there.loginFailures(['address'], window(later)), new Map([['address', { failures: 1, startedAt: later }]]));
    } finally {
      await there.close();
      await here.close();
      await metadata.close();
    }
  });

  test('wait for another process holding the write lock without blocking the event loop', async () => {
    const path = join(tempDir(), 'wharf.db');
    const metadata = new SqliteMetadataStore({ path });
    const store = new SqliteAccountStore({ path });
    const rival = new Database(path);
    try {
      rival.prepare('BEGIN IMMEDIATE').run();
      let counted = false;
      const count = store.countLoginFailure([{ key: 'k', max: 5 }], window(Date.now())).then(() => {
        counted = true;
      });
      // Timers still run while the rival holds the lock (a busy handler would have stopped them).
      const started = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.ok(performance.now() - started < 1000, 'the event loop was not blocked');
      assert.equal(counted, false);
      rival.prepare('COMMIT').run();
      await count;
      assert.equal(counted, true);
      assert.equal((await store.loginFailures(['k'], window(Date.now()))).get('k')?.failures, 1);
    } finally {
      if (rival.inTransaction) rival.prepare('ROLLBACK').run();
      rival.close();
      await store.close();
      await metadata.close();
    }
  });
});

/** Pids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      // the process went away while we looked
    }
  }
  return out;
}

/** The process holding the server end of our TCP connection from `clientPort` (via /proc/net/tcp and fd links). */
function serverProcessOf(clientPort: number, serverPort: number, pids: number[]): number | undefined {
  const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
  let inode: string | undefined;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length > 9 && fields[1]!.endsWith(`:${hexPort(serverPort)}`) && fields[2]!.endsWith(`:${hexPort(clientPort)}`)) inode = fields[9];
  }
  if (inode === undefined) return undefined;
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
  clientPort: number;
}

function get(port: number, options: { agent: Agent; authorization?: string; localAddress?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/v2/', agent: options.agent, localAddress: options.localAddress, headers: options.authorization ? { Authorization: options.authorization } : {} },
      (res) => {
        const clientPort = res.socket.localPort!;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], clientPort }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('the login throttle across worker processes', () => {
  const watch = new SecretWatch();
  const ALICE_PW = watch.credentials('alice', 'alice-password-1');
  const BOB_PW = watch.credentials('bob', 'bob-password-1');
  const WRONG = watch.secret('not-the-password');
  after(() => watch.dispose());

  test('the limits hold for all processes together, per user at an address and per address', async () => {
    const dir = tempDir();
    writeHtpasswd(join(dir, 'htpasswd'), { alice: ALICE_PW, bob: BOB_PW });
    writeFileSync(
      join(dir, 'config.yml'),
      `server: { workers: 2 }
auth:
  htpasswd: { path: ${join(dir, 'htpasswd')} }
  throttle: { maxfailures: 4, maxfailuresperaddress: 7, window: 5m }
`,
    );
    const wharf: WharfProcess = watch.server(await startWharf({ args: [join(dir, 'config.yml')] }));
    const pid = wharf.child.pid!;
    let workers: number[] = [];
    // With two workers the parent only hands out connections: the two children serve.
    for (let i = 0; i < 100 && workers.length < 2; i += 1) {
      workers = childrenOf(pid);
      if (workers.length < 2) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(workers.length, 2, 'two worker processes');

    // One kept-alive connection to each process, found by asking the kernel who holds its server end.
    const pinned: Array<{ agent: Agent; owner: number; clientPort: number }> = [];
    // The worker takes connections only once it has built its stack, so keep trying for a while.
    const owners: Array<number | undefined> = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && pinned.length < 2; ) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const { clientPort } = await get(wharf.port, { agent });
      const owner = serverProcessOf(clientPort, wharf.port, workers);
      owners.push(owner);
      if (owner !== undefined && !pinned.some((p) => p.owner === owner)) pinned.push({ agent, owner, clientPort });
      else {
        agent.destroy();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    assert.equal(pinned.length, 2, `connections to both processes (${pid}, ${workers}): served by ${owners}`);
    cleanup.push(() => pinned.forEach((p) => p.agent.destroy()));
    const [first, second] = pinned.map((p) => p.agent) as [Agent, Agent];
    const alternate = (i: number) => (i % 2 ? second : first);

    // An attacker at 127.0.0.1 guessing alice's password, alternately in each process.
    const guesses: Answer[] = [];
    for (let i = 0; i < 12; i += 1) guesses.push(await get(wharf.port, { agent: alternate(i), authorization: basic('alice', WRONG) }));
    assert.deepEqual(guesses.map((g) => g.clientPort), guesses.map((_, i) => pinned[i % 2]!.clientPort), 'each guess went to the process its connection is with');
    assert.deepEqual(guesses.map((g) => g.status), [401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429, 429], 'four failures in all, not four per process');
    assert.ok(Number(guesses[11]!.retryAfter) > 0);
    // The right password from the attacker's address is refused too, in both processes...
    for (const agent of [first, second]) assert.equal((await get(wharf.port, { agent, authorization: basic('alice', ALICE_PW) })).status, 429);
    // ...but alice herself, from another address, is not locked out.
    const elsewhere = new Agent({ keepAlive: false });
    cleanup.push(() => elsewhere.destroy());
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await get(wharf.port, { agent: elsewhere, localAddress: '127.0.0.2', authorization: basic('alice', ALICE_PW) })).status, 200);
    }

    // Per address: three more failures (for bob) bring 127.0.0.1 to seven, and then it is refused for anyone.
    for (let i = 0; i < 3; i += 1) assert.equal((await get(wharf.port, { agent: alternate(i), authorization: basic('bob', WRONG) })).status, 401);
    for (const agent of [first, second]) assert.equal((await get(wharf.port, { agent, authorization: basic('bob', BOB_PW) })).status, 429);
    assert.equal((await get(wharf.port, { agent: elsewhere, localAddress: '127.0.0.2', authorization: basic('bob', BOB_PW) })).status, 200);
    await wharf.stop();
    assert.deepEqual(watch.leaks(), []);
  });
});
