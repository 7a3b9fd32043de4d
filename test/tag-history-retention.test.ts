import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cliUser } from './support/cli.js';
import { raw } from './support/http.js';
import { OCI_MANIFEST, blob, configBlob, imageManifest } from './support/oci-fixtures.js';
import { pushBlob, putManifest } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const user = cliUser();
const cleanup: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const step of cleanup) await step();
  user.dispose();
});

/** `wharf serve` over a fresh directory with `history` settings, and `wharf garbage-collect` on the same config. */
async function registry(historyYaml: string): Promise<{ wharf: WharfProcess; collect(): Promise<string> }> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-history-gc-'));
  const configFile = join(dir, 'config.yml');
  writeFileSync(configFile, `version: 0.1\nstorage:\n  delete:\n    enabled: true\n  gc:\n    delay: 0s\n${historyYaml}`);
  const wharf = await startWharf({ args: [configFile], dataDir: join(dir, 'data') });
  cleanup.push(async () => {
    await wharf.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    wharf,
    collect: async () => (await user.ok(['garbage-collect', configFile, '--delete-untagged', '--data', join(dir, 'data')])).stdout,
  };
}

/** Pushes an image with a layer of its own under `reference`; returns the manifest and that layer. */
async function push(wharf: WharfProcess, repository: string, reference: string, name: string) {
  const layer = blob(`layer ${name} ${Math.random()}`);
  const config = configBlob({ name });
  await pushBlob(wharf.url, repository, layer);
  await pushBlob(wharf.url, repository, config);
  const manifest = imageManifest(config, [layer]);
  const res = await putManifest(wharf.url, repository, reference, manifest, OCI_MANIFEST);
  assert.equal(res.status, 201, res.body.toString());
  return { manifest, layer };
}

const has = async (wharf: WharfProcess, path: string) => (await raw(wharf.url, 'HEAD', path, { headers: { Accept: OCI_MANIFEST } })).status === 200;

describe('history.retention keeps the manifests in a tag history from collection', () => {
  test('by default (14 days) --delete-untagged keeps a manifest a tag moved away from, and the restore works', async () => {
    const { wharf, collect } = await registry('');
    const old = await push(wharf, 'app', 'prod', 'old');
    await push(wharf, 'app', 'prod', 'new');
    const untagged = imageManifest(configBlob({ name: 'never tagged' }), []);
    await pushBlob(wharf.url, 'app', configBlob({ name: 'never tagged' }));
    assert.equal((await putManifest(wharf.url, 'app', untagged.digest, untagged, OCI_MANIFEST)).status, 201);
    const report = await collect();
    assert.match(report, /1 untagged manifests kept: in a tag's history within the last 1209600s \(history\.retention\)/);
    assert.match(report, new RegExp(`manifest eligible for deletion: ${untagged.digest}`), 'a manifest never tagged is not protected');
    assert.equal(await has(wharf, `/v2/app/manifests/${untagged.digest}`), false);
    assert.equal(await has(wharf, `/v2/app/manifests/${old.manifest.digest}`), true);
    assert.equal(await has(wharf, `/v2/app/blobs/${old.layer.digest}`), true, 'and what it references');
    const restored = await user.ok(['tag', 'restore', `${wharf.host}/app:prod`, '--to', old.manifest.digest]);
    assert.match(restored.stdout, new RegExp(`-> ${old.manifest.digest}`));
  });

  test('a manifest deleted through the API is not protected: its blobs are collected', async () => {
    const { wharf, collect } = await registry('');
    const first = await push(wharf, 'app', 'prod', 'first');
    await push(wharf, 'app', 'prod', 'second');
    assert.equal((await raw(wharf.url, 'DELETE', `/v2/app/manifests/${first.manifest.digest}`)).status, 202);
    const report = await collect();
    assert.match(report, new RegExp(`blob eligible for deletion: ${first.layer.digest}`));
    assert.equal(await has(wharf, `/v2/app/blobs/${first.layer.digest}`), false);
    const restore = await user.run(['tag', 'restore', `${wharf.host}/app:prod`, '--to', first.manifest.digest]);
    assert.equal(restore.code, 1);
    assert.match(restore.stderr, /MANIFEST_UNKNOWN/);
  });

  test('history.retention: 0 turns the protection off', async () => {
    const { wharf, collect } = await registry('history:\n  retention: 0s\n');
    const old = await push(wharf, 'app', 'prod', 'old');
    await push(wharf, 'app', 'prod', 'new');
    const report = await collect();
    assert.match(report, new RegExp(`manifest eligible for deletion: ${old.manifest.digest}`));
    assert.equal(await has(wharf, `/v2/app/manifests/${old.manifest.digest}`), false);
    const restore = await user.run(['tag', 'restore', `${wharf.host}/app:prod`, '--at', '1h']);
    assert.equal(restore.code, 1, 'an hour ago the tag did not exist');
    assert.match(restore.stderr, /MANIFEST_UNKNOWN/);
  });
});
