import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { JobRunner } from '../src/jobs/job-runner.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { raw } from './support/http.js';
import { startUpload } from './support/push.js';
import { startWharf } from './support/wharf-process.js';

const roots: string[] = [];
after(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

/** Two connections to one database file: two processes, as far as SQLite is concerned. */
function twoProcesses(): [SqliteMetadataStore, SqliteMetadataStore] {
  const root = mkdtempSync(join(tmpdir(), 'wharf-jobs-'));
  roots.push(root);
  const path = join(root, 'wharf.db');
  return [new SqliteMetadataStore({ path }), new SqliteMetadataStore({ path })];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('background jobs', () => {
  it('each job runs once, in one of several runners sharing the queue', async () => {
    const [a, b] = twoProcesses();
    const runs: string[] = [];
    const handler = (who: string) => async ({ job }: { job: { id: number } }) => {
      runs.push(`${who}:${job.id}`);
      await sleep(5);
    };
    const first = new JobRunner(a, { handlers: { 'test.work': handler('a') } });
    const second = new JobRunner(b, { handlers: { 'test.work': handler('b') } });
    for (let i = 0; i < 20; i += 1) await first.enqueue({ kind: 'test.work' });
    await Promise.all([first.runDue(), second.runDue()]);
    const ids = runs.map((r) => r.split(':')[1]);
    assert.equal(ids.length, 20);
    assert.equal(new Set(ids).size, 20, 'no job ran twice');
    assert.equal((await a.listJobs({ states: ['done'], limit: 50 })).length, 20);
    await Promise.all([a.close(), b.close()]);
  });

  it('a failing job is retried with backoff and given up after its attempts', async () => {
    const [a, b] = twoProcesses();
    const errors: string[] = [];
    const runner = new JobRunner(a, {
      handlers: { 'test.fail': async () => Promise.reject(new Error('disk on fire')) },
      backoffMs: 1,
      onError: (error) => errors.push((error as Error).message),
    });
    const job = await runner.enqueue({ kind: 'test.fail', maxAttempts: 3 });
    for (let i = 0; i < 5; i += 1) {
      await runner.runDue();
      await sleep(10);
    }
    const [failed] = await b.listJobs({ states: ['failed'], limit: 1 });
    assert.equal(failed?.id, job.id);
    assert.equal(failed?.attempts, 3);
    assert.equal(failed?.lastError, 'disk on fire');
    assert.equal(errors.length, 3);
    await Promise.all([a.close(), b.close()]);
  });

  it('a runner that dies loses its job to another once the lease runs out; a live one keeps it by renewing', async () => {
    const [a, b] = twoProcesses();
    // A claim by a process that then died: never renewed, never finished.
    const job = await a.enqueueJob({ kind: 'test.long' });
    assert.equal((await a.claimJob({ kinds: ['test.long'], owner: 'dead-process', leaseMs: 200 }))?.id, job.id);
    let stolen = false;
    const rescuer = new JobRunner(b, { handlers: { 'test.long': async () => void (stolen = true) }, leaseMs: 200 });
    assert.equal(await rescuer.runDue(), 0, 'the lease still holds');
    await sleep(250);
    assert.equal(await rescuer.runDue(), 1);
    assert.ok(stolen);

    // A long job whose runner is alive renews its lease: nobody else takes it.
    const long = await a.enqueueJob({ kind: 'test.slow' });
    let runs = 0;
    const slow = async () => {
      runs += 1;
      await sleep(600);
    };
    const holder = new JobRunner(a, { handlers: { 'test.slow': slow }, leaseMs: 150 });
    const other = new JobRunner(b, { handlers: { 'test.slow': slow }, leaseMs: 150 });
    const holding = holder.runDue();
    await sleep(300);
    assert.equal(await other.runDue(), 0, 'the renewed lease keeps the job with its runner');
    await holding;
    assert.equal(runs, 1);
    assert.equal((await a.listJobs({ states: ['done'], limit: 10 })).some((j) => j.id === long.id), true);
    await Promise.all([a.close(), b.close()]);
  });

  it('upload purging runs as a recurring job in one of the serving processes: stale sessions and orphaned files go', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'wharf-purge-'));
    roots.push(dataDir);
    const config = join(dataDir, 'config.yml');
    writeFileSync(config, 'storage:\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 1s\n');
    const wharf = await startWharf({ dataDir, args: [config, '--workers', '2'] });
    try {
      const location = await startUpload(wharf.url, 'purge/app');
      assert.equal((await raw(wharf.url, 'PATCH', location, { body: Buffer.alloc(1000, 1) })).status, 202);
      const orphan = join(dataDir, 'uploads', randomUUID());
      mkdirSync(orphan, { recursive: true });
      writeFileSync(join(orphan, '0-leftover'), 'x');
      let gone = false;
      for (let i = 0; i < 40 && !gone; i += 1) {
        await sleep(250);
        gone = (await raw(wharf.url, 'GET', location)).status === 404 && !existsSync(orphan);
      }
      assert.ok(gone, `the stale session and the orphaned directory were purged:\n${wharf.output()}`);
      assert.match(wharf.output(), /purged abandoned uploads/);
      const store = new SqliteMetadataStore({ path: join(dataDir, 'wharf.db') });
      const jobs = await store.listJobs({ limit: 10 });
      await store.close();
      // One purge job however many processes (beside the retention policies' own recurring run).
      const purges = jobs.filter((j) => j.kind === 'uploads.purge');
      assert.equal(purges.length, 1, 'one recurring job, however many processes');
      assert.deepEqual(jobs.map((j) => j.kind).sort(), ['retention.apply', 'uploads.purge']);
      assert.equal(purges[0]!.repeatMs, 1000);
    } finally {
      await wharf.stop();
    }
  });

  it('a dry run only reports', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'wharf-purge-'));
    roots.push(dataDir);
    const config = join(dataDir, 'config.yml');
    writeFileSync(config, 'storage:\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 1s\n      dryrun: true\n');
    const wharf = await startWharf({ dataDir, args: [config] });
    try {
      const location = await startUpload(wharf.url, 'purge/dry');
      let reported = false;
      for (let i = 0; i < 40 && !reported; i += 1) {
        await sleep(250);
        reported = /abandoned uploads found \(dry run/.test(wharf.output());
      }
      assert.ok(reported, wharf.output());
      assert.equal((await raw(wharf.url, 'GET', location)).status, 204, 'nothing removed');
    } finally {
      await wharf.stop();
    }
  });
});
