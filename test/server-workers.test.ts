import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { connectionOwners } from '../bench/connections.js';
import { workerEnv, workerExecArgv } from '../src/server/worker-pool.js';
import { raw } from './support/http.js';
import { configBlob, imageManifest, randomBlob, OCI_MANIFEST } from './support/oci-fixtures.js';
import { startWharf } from './support/wharf-process.js';

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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** GET /v2/ on a fresh connection; resolves with the status, or 0 when no answer came in time. */
function probeOnNewConnection(port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/v2/', agent: false, headers: { Connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy();
      resolve(0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function pushImage(base: string, repository: string, tag: string): Promise<string> {
  const config = configBlob({ created: repository });
  const layer = randomBlob(200_000);
  for (const blob of [config, layer]) {
    const res = await raw(base, 'POST', `/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, { body: blob.data, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(res.status, 201, res.body.toString());
  }
  const manifest = imageManifest(config, [layer]);
  const put = await raw(base, 'PUT', `/v2/${repository}/manifests/${tag}`, { body: manifest.data, headers: { 'Content-Type': OCI_MANIFEST } });
  assert.equal(put.status, 201, put.body.toString());
  return manifest.digest;
}

test('with --workers 2 two worker processes serve the same socket and database, and stop with the parent', async () => {
  const wharf = await startWharf({ args: ['--workers', '2', '--delete'], env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' } });
  try {
    let workers: number[] = [];
    for (let i = 0; i < 50 && workers.length < 2; i += 1) {
      workers = childrenOf(wharf.child.pid!);
      if (workers.length < 2) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(workers.length, 2, 'two worker processes; the parent only hands them connections');

    // Many pushes at once over many connections land in both processes; every one must be
    // readable afterwards, whichever process answers.
    const digests = await Promise.all(Array.from({ length: 12 }, (_, i) => pushImage(wharf.url, `multi/r${i}`, 'v1')));
    for (let i = 0; i < digests.length; i += 1) {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const res = await raw(wharf.url, 'HEAD', `/v2/multi/r${i}/manifests/v1`, { headers: { Accept: OCI_MANIFEST, Connection: 'close' } });
        assert.equal(res.status, 200);
        assert.equal(res.header('docker-content-digest'), digests[i]);
      }
    }
    const catalog = await raw(wharf.url, 'GET', '/v2/_catalog?n=100');
    assert.equal(catalog.json().repositories.filter((r: string) => r.startsWith('multi/')).length, 12);

    assert.equal(await wharf.stop(), 0);
    for (let i = 0; i < 50 && workers.some(alive); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(workers.filter(alive), [], 'the worker exits with the first process');
  } finally {
    await wharf.dispose();
  }
});

test('with --workers 1 there is a single process', async () => {
  const wharf = await startWharf({ args: ['--workers', '1'] });
  try {
    const res = await raw(wharf.url, 'GET', '/v2/');
    assert.equal(res.status, 200);
    assert.deepEqual(childrenOf(wharf.child.pid!), []);
  } finally {
    await wharf.dispose();
  }
});

test('connections that arrive while workers are still starting are all answered', async () => {
  // A worker gets the listening socket only once it can serve it; before that fix, connections the
  // kernel handed to a starting worker were never answered.
  const wharf = await startWharf({ args: ['--workers', '4'], env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' } });
  try {
    const statuses: number[] = [];
    for (let wave = 0; wave < 10; wave += 1) {
      statuses.push(...(await Promise.all(Array.from({ length: 20 }, () => probeOnNewConnection(wharf.port, 5000)))));
    }
    assert.deepEqual(
      statuses.filter((status) => status !== 200),
      [],
      'every connection is answered 200',
    );
    assert.equal(childrenOf(wharf.child.pid!).length, 4);
  } finally {
    await wharf.dispose();
  }
});

test('workers exit when the first process is killed outright', async () => {
  const wharf = await startWharf({ args: ['--workers', '3'] });
  try {
    let workers: number[] = [];
    for (let i = 0; i < 50 && workers.length < 3; i += 1) {
      workers = childrenOf(wharf.child.pid!);
      if (workers.length < 3) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(workers.length, 3);
    await wharf.kill();
    for (let i = 0; i < 100 && workers.some(alive); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(workers.filter(alive), [], 'no orphaned worker keeps serving the port');
  } finally {
    await wharf.dispose();
  }
});

test('connections opened together are shared evenly by the workers, whose young generation is capped', async () => {
  const wharf = await startWharf({ args: ['--workers', '2'], env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' } });
  const sockets: Socket[] = [];
  try {
    const workers = childrenOf(wharf.child.pid!);
    assert.equal(workers.length, 2, 'the workers are up once the server answers');
    // Eight keep-alive connections at once, each answered once and held open.
    for (const socket of await Promise.all(Array.from({ length: 8 }, () => openAnswered(wharf.port)))) sockets.push(socket);
    const owners = connectionOwners([wharf.child.pid!, ...workers], wharf.port);
    const held = (pid: number) => sockets.filter((socket) => owners.get(socket.localPort!) === pid).length;
    assert.deepEqual(
      [held(wharf.child.pid!), ...workers.map(held)],
      [0, 4, 4],
      'the parent keeps none, each worker holds four',
    );
    for (const pid of workers) assert.ok(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('--max-semi-space-size=1'));
    for (const pid of workers) assert.ok(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('--heap-growing-percent=10'));
    for (const pid of workers) assert.ok(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('MALLOC_ARENA_MAX=2'), 'workers cap their malloc arenas');
  } finally {
    for (const socket of sockets) socket.destroy();
    await wharf.dispose();
  }
});

test("an operator's own V8 heap flags replace the workers' defaults, each its own", () => {
  const defaults = ['--max-semi-space-size=1', '--heap-growing-percent=10'];
  assert.deepEqual(workerExecArgv([], undefined), defaults);
  assert.deepEqual(workerExecArgv(['--enable-source-maps'], ''), [...defaults, '--enable-source-maps']);
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=8'], undefined), ['--heap-growing-percent=10', '--max-semi-space-size=8']);
  assert.deepEqual(workerExecArgv([], '--max_semi_space_size=4'), ['--heap-growing-percent=10']);
  assert.deepEqual(workerExecArgv(['--heap-growing-percent=50'], undefined), ['--max-semi-space-size=1', '--heap-growing-percent=50']);
});

test("workers cap glibc's malloc arenas unless the operator chose", () => {
  assert.equal(workerEnv({ PATH: '/bin' }).MALLOC_ARENA_MAX, '2');
  assert.equal(workerEnv({ PATH: '/bin' }).PATH, '/bin');
  assert.equal(workerEnv({ MALLOC_ARENA_MAX: '8' }).MALLOC_ARENA_MAX, '8');
  assert.equal(workerEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' }).MALLOC_ARENA_MAX, undefined);
});

/** A keep-alive connection that has had one answer (so some process holds it), left open. */
function openAnswered(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write('GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    socket.once('data', () => resolve(socket));
    socket.once('error', reject);
  });
}

test('two worker processes racing to move one tag leave one unbroken history, ending where the tag points', async () => {
  const wharf = await startWharf({ args: ['--workers', '2'], env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' } });
  try {
    const config = configBlob({ race: 'tag move across processes' });
    const pushed = await raw(wharf.url, 'POST', `/v2/race/app/blobs/uploads/?digest=${config.digest}`, {
      body: config.data,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(pushed.status, 201);
    const manifests = Array.from({ length: 16 }, (_, i) => imageManifest(config, [], { annotations: { n: String(i) } }));
    for (const manifest of manifests) {
      const put = await raw(wharf.url, 'PUT', `/v2/race/app/manifests/${manifest.digest}`, { body: manifest.data, headers: { 'Content-Type': OCI_MANIFEST } });
      assert.equal(put.status, 201);
    }
    // Each move on a connection of its own: the parent deals connections to the two workers in turn.
    const moves = await Promise.all(
      manifests.map((manifest) =>
        raw(wharf.url, 'PUT', '/v2/race/app/manifests/latest', { body: manifest.data, headers: { 'Content-Type': OCI_MANIFEST, Connection: 'close' } }),
      ),
    );
    assert.deepEqual(moves.map((m) => m.status), manifests.map(() => 201));
    const reply = await raw(wharf.url, 'GET', '/v2/race/app/_wharf/tags/latest/history?n=100');
    assert.equal(reply.status, 200);
    const events = (reply.json() as { history: Array<{ digest: string | null; previous: string | null }> }).history;
    assert.equal(events.length, 16, 'every move is recorded once');
    // Newest first: each entry's previous digest is the digest of the entry after it.
    for (let i = 0; i + 1 < events.length; i += 1) assert.equal(events[i]!.previous, events[i + 1]!.digest, `a gap or fork at ${i}`);
    assert.equal(events[events.length - 1]!.previous, null);
    const current = await raw(wharf.url, 'HEAD', '/v2/race/app/manifests/latest', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(current.header('docker-content-digest'), events[0]!.digest, 'the tag points where the last recorded move put it');
  } finally {
    await wharf.dispose();
  }
});

test('a chunked upload whose requests alternate worker processes, or stay on one, is verified and stored whole', async () => {
  const wharf = await startWharf({ args: ['--workers', '2'], env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' } });
  try {
    const chunkSize = 300_000;
    for (const [name, perRequestConnection] of [['alternating', true], ['one-connection', false]] as const) {
      const blob = randomBlob(4 * chunkSize + 123);
      // A connection of its own per request: the parent deals connections to the workers in turn,
      // so each chunk lands in the other process. Otherwise the chunks share one kept-alive connection.
      const own: Record<string, string> = perRequestConnection ? { Connection: 'close' } : {};
      const started = await raw(wharf.url, 'POST', `/v2/chunks/${name}/blobs/uploads/`, { headers: { Connection: 'close' } });
      assert.equal(started.status, 202);
      let location = started.header('location')!;
      for (let start = 0; start < blob.data.length; start += chunkSize) {
        const chunk = blob.data.subarray(start, Math.min(start + chunkSize, blob.data.length));
        const patched = await raw(wharf.url, 'PATCH', location, {
          body: chunk,
          headers: { ...own, 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + chunk.length - 1}` },
        });
        assert.equal(patched.status, 202, patched.body.toString());
        location = patched.header('location')!;
      }
      // The commit on a fresh connection: possibly a process that wrote none of the chunks.
      const put = await raw(wharf.url, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${blob.digest}`, { headers: { Connection: 'close' } });
      assert.equal(put.status, 201, `${name}: ${put.body.toString()}`);
      const pulled = await raw(wharf.url, 'GET', `/v2/chunks/${name}/blobs/${blob.digest}`);
      assert.equal(pulled.status, 200);
      assert.ok(pulled.body.equals(blob.data), `${name}: the stored bytes are the pushed ones`);
    }
  } finally {
    await wharf.dispose();
  }
});
