import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { raw } from './support/http.js';
import { randomBlob } from './support/oci-fixtures.js';
import { seededBytes, writeImagesLayout } from './support/oci-layout.js';
import { pushBlob, pushImage } from './support/push.js';
import { ok, requireTool, run } from './support/tools.js';
import { WHARF_BIN, startWharf, type WharfProcess } from './support/wharf-process.js';

const roots: string[] = [];
after(() => roots.forEach((root) => rmSync(root, { recursive: true, force: true })));

function workDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  roots.push(dir);
  return dir;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Digests of the blob files in a Wharf data directory. */
function blobFiles(dataDir: string): Set<string> {
  const found = new Set<string>();
  const root = join(dataDir, 'blobs', 'sha256');
  for (const prefix of readdirSync(root)) for (const hex of readdirSync(join(root, prefix))) found.add(`sha256:${hex}`);
  return found;
}

async function garbageCollect(config: string, dataDir: string, ...flags: string[]) {
  return run(process.execPath, [WHARF_BIN, 'garbage-collect', config, '--data', dataDir, ...flags]);
}

/** Runs `wharf garbage-collect` until it gets the lease (the server's scheduled run may hold it). */
async function collectOnce(config: string, dataDir: string, ...flags: string[]): Promise<string> {
  for (;;) {
    const result = await garbageCollect(config, dataDir, ...flags);
    if (result.code === 0) return result.stdout;
    assert.match(result.stderr, /another garbage collection is running/, result.stderr);
    await sleep(200);
  }
}

describe('garbage collection against a live server with real clients', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  before(() => {
    requireTool('skopeo');
    work = workDir('wharf-gc-live-');
    mkdirSync(join(work, 'home'));
    writeFileSync(join(work, 'auth.json'), '{"auths":{}}');
    env = { ...process.env, HOME: join(work, 'home'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), TMPDIR: work };
  });

  it('skopeo pushes (re-pushing blobs being collected) while two collectors loop, with server.workers processes', async () => {
    const rounds = 6;
    const shared = seededBytes(200_000, 100);
    const garbageLayer = (i: number) => seededBytes(150_000, 200 + i);
    const images: Array<{ ref: string; layers: Buffer[] }> = [];
    for (let i = 0; i < rounds; i += 1) {
      // What stays: each round's image shares a layer with all others and reuses the garbage of two rounds before.
      images.push({ ref: `app${i}`, layers: [shared, seededBytes(50_000, 300 + i), ...(i >= 2 ? [garbageLayer(i - 2)] : [])] });
      // What becomes garbage: an image whose tag then moves to a tiny one.
      images.push({ ref: `scratch${i}`, layers: [garbageLayer(i)] });
      images.push({ ref: `tiny${i}`, layers: [seededBytes(100, 400 + i)] });
    }
    const layoutDir = join(work, 'layout');
    const layout = writeImagesLayout(layoutDir, images);
    const config = join(work, 'live.yml');
    writeFileSync(
      config,
      // history.retention: 0: the garbage here is what retagging scratch/s<i>:1 leaves, which the
      // default retention would keep restorable (test/tag-history-retention.test.ts covers that).
      ['server:', '  workers: 2', 'storage:', '  delete:', '    enabled: true', '  gc:', '    enabled: true', '    interval: 1s', '    delay: 2s', '    deleteuntagged: true', 'history:', '  retention: 0s', ''].join('\n'),
    );
    const wharf = await startWharf({ args: [config] });
    try {
      const copy = (ref: string, target: string) => ok('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layoutDir}:${ref}`, `docker://${wharf.host}/${target}`], { env });
      let stop = false;
      let cliRuns = 0;
      let cliDeleted = 0;
      const cliLoop = (async () => {
        while (!stop) {
          const result = await garbageCollect(config, wharf.dataDir, '-m', '--json');
          if (result.code !== 0) {
            assert.match(result.stderr, /another garbage collection is running/, result.stderr);
            continue;
          }
          cliRuns += 1;
          cliDeleted += (JSON.parse(result.stdout) as { deleted: { blobs: number } }).deleted.blobs;
        }
      })();
      try {
        for (let i = 0; i < rounds; i += 1) {
          await copy(`app${i}`, `live/app:${i}`);
          await copy(`scratch${i}`, `scratch/s${i}:1`);
          await copy(`tiny${i}`, `scratch/s${i}:1`);
          // Let the garbage age past the delay while the collectors go round.
          await sleep(1500);
        }
      } finally {
        stop = true;
        await cliLoop;
      }
      assert.ok(cliRuns > 0, 'the CLI collector ran');
      assert.match(wharf.output(), /garbage collection finished/, 'the scheduled collection ran inside wharf serve');
      const servedDeleted = [...wharf.output().matchAll(/"deleted":\{"blobs":(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
      assert.ok(cliDeleted + servedDeleted > 0, 'garbage was collected while the pushes went on');

      // Nothing that is referenced was lost: every tag pulls whole (skopeo verifies every digest).
      for (let i = 0; i < rounds; i += 1) {
        await ok('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${wharf.host}/live/app:${i}`, `oci:${join(work, 'back')}:app${i}`], { env });
        await ok('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${wharf.host}/scratch/s${i}:1`, `oci:${join(work, 'back')}:tiny${i}`], { env });
      }

      // And nothing is left that collections cannot remove: the last garbage is marked, then
      // swept once marked for the delay.
      for (;;) {
        const report = JSON.parse(await collectOnce(config, wharf.dataDir, '-m', '--json')) as { eligibleBlobs: string[]; young: { blobs: number } };
        if (report.eligibleBlobs.length === 0 && report.young.blobs === 0) break;
        await sleep(500);
      }
      const files = blobFiles(wharf.dataDir);
      const kept = new Set<string>();
      for (let i = 0; i < rounds; i += 1) {
        for (const image of [layout[`app${i}`]!, layout[`tiny${i}`]!]) for (const digest of [image.configDigest, ...image.layerDigests]) kept.add(digest);
      }
      assert.deepEqual([...files].sort(), [...kept].sort());
      const fsck = await run(process.execPath, [WHARF_BIN, 'fsck', config, '--data', wharf.dataDir]);
      assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
      assert.match(fsck.stdout, / 0 corrupt, 0 missing, 0 files without a record/);
    } finally {
      await wharf.dispose();
    }
  });

  it('a collection killed (SIGKILL) mid-sweep loses no referenced blob, and the next one removes everything it left', async () => {
    const dataDir = workDir('wharf-gc-kill-');
    const config = join(dataDir, 'config.yml');
    writeFileSync(config, 'storage:\n  delete:\n    enabled: true\n  gc:\n    delay: 0s\n');
    const wharf = await startWharf({ args: [config], dataDir });
    try {
      const images = [];
      for (let i = 0; i < 3; i += 1) images.push(await pushImage(wharf.url, `kill/app${i}`, 'v1', {}, randomBlob(20_000)));
      const orphans = [];
      for (let i = 0; i < 300; i += 1) {
        const orphan = randomBlob(4096);
        orphans.push(orphan);
        await pushBlob(wharf.url, 'kill/orphans', orphan);
      }
      await sleep(5);

      const child = spawn(process.execPath, [WHARF_BIN, 'garbage-collect', config, '--data', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
      let output = '';
      let sweeping = 0;
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        sweeping = (output.match(/^blob eligible for deletion: /gm) ?? []).length;
        if (sweeping >= 20 && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      const signal = await exited;
      assert.equal(signal, 'SIGKILL', `the collection finished before it could be killed:\n${output}`);

      // Every referenced blob is still served, whole.
      for (const { manifest, layer, config: imageConfig } of images) {
        for (const blob of [layer, imageConfig]) {
          const res = await raw(wharf.url, 'GET', `/v2/${repositoryOf(images, manifest.digest)}/blobs/${blob.digest}`);
          assert.equal(res.status, 200);
          assert.equal(`sha256:${createHash('sha256').update(res.body).digest('hex')}`, blob.digest);
        }
      }
      // The next collection replaces the dead holder's lease and finishes the job.
      const stdout = await collectOnce(config, dataDir);
      assert.match(stdout, /freed \d+ bytes in /);
      const kept = new Set(images.flatMap(({ layer, config: c }) => [layer.digest, c.digest]));
      assert.deepEqual([...blobFiles(dataDir)].sort(), [...kept].sort());
      const metadata = new SqliteMetadataStore({ path: join(dataDir, 'wharf.db') });
      try {
        const rows = await metadata.listBlobs({ limit: 1000 });
        assert.deepEqual(rows.map((row) => row.digest).sort(), [...kept].sort());
        assert.ok(rows.every((row) => row.state === 'present'));
      } finally {
        await metadata.close();
      }
      // A collected blob can be pushed again.
      await pushBlob(wharf.url, 'kill/orphans', orphans[0]!);
      assert.equal((await raw(wharf.url, 'GET', `/v2/kill/orphans/blobs/${orphans[0]!.digest}`)).body.equals(orphans[0]!.data), true);
    } finally {
      await wharf.dispose();
    }
  });

  it('wharf serve killed (SIGKILL) during its scheduled collection loses no referenced blob; after a restart the rest goes', async () => {
    const dataDir = workDir('wharf-gc-serve-kill-');
    const quiet = join(dataDir, 'quiet.yml');
    writeFileSync(quiet, 'server:\n  workers: 1\nstorage:\n  gc:\n    delay: 0s\n');
    const scheduled = join(dataDir, 'scheduled.yml');
    writeFileSync(scheduled, 'server:\n  workers: 1\nstorage:\n  gc:\n    enabled: true\n    interval: 1s\n    delay: 0s\n');
    // The content first, with no collection running.
    let wharf = await startWharf({ args: [quiet], dataDir });
    const images = [];
    try {
      for (let i = 0; i < 3; i += 1) images.push(await pushImage(wharf.url, `kill/app${i}`, 'v1', {}, randomBlob(20_000)));
      for (let i = 0; i < 500; i += 1) await pushBlob(wharf.url, 'kill/orphans', randomBlob(1024));
    } finally {
      await wharf.stop();
    }
    const kept = new Set(images.flatMap(({ layer, config }) => [layer.digest, config.digest]));
    const before = blobFiles(dataDir).size;
    assert.equal(before, 506);

    // Then a server whose scheduled collection is killed once it has swept some of the orphans.
    wharf = await startWharf({ args: [scheduled], dataDir });
    for (;;) {
      const left = blobFiles(dataDir).size;
      if (left <= before - 10) break;
      await sleep(5);
    }
    await wharf.kill();
    const left = blobFiles(dataDir).size;
    assert.ok(left > kept.size, `the collection finished before the kill (${left} files left)`);

    wharf = await startWharf({ args: [quiet], dataDir });
    try {
      for (const [i, { layer, config }] of images.entries()) {
        for (const blob of [layer, config]) {
          const res = await raw(wharf.url, 'GET', `/v2/kill/app${i}/blobs/${blob.digest}`);
          assert.equal(res.status, 200);
          assert.equal(`sha256:${createHash('sha256').update(res.body).digest('hex')}`, blob.digest);
        }
      }
      await collectOnce(quiet, dataDir);
      assert.deepEqual([...blobFiles(dataDir)].sort(), [...kept].sort());
      const fsck = await run(process.execPath, [WHARF_BIN, 'fsck', quiet, '--data', dataDir]);
      assert.match(fsck.stdout, /^6 blobs checked .*: 0 corrupt, 0 missing, 0 files without a record/m);
    } finally {
      await wharf.stop();
    }
  });
});

function repositoryOf(images: Array<{ manifest: { digest: string } }>, digest: string): string {
  return `kill/app${images.findIndex((image) => image.manifest.digest === digest)}`;
}

