import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blob } from './support/oci-fixtures.js';
import { seededBytes, writeImagesLayout, writeTestLayout, type LayoutImage, type TestLayout } from './support/oci-layout.js';
import { raw } from './support/http.js';
import { startUpload, withQuery } from './support/push.js';
import { DOCKER_REGISTRY_BIN, startReferenceRegistry, type ReferenceRegistry } from './support/reference-registry.js';
import { ok, requireTool, run } from './support/tools.js';
import { WHARF_BIN, startWharf, type WharfProcess } from './support/wharf-process.js';

/** What a `garbage-collect` run printed, as sets (the order of repositories and blobs is the store's). */
interface GcOutput {
  /** `repo: marking manifest …` and `repo: marking blob …` lines. */
  markingLines: Set<string>;
  marked: Set<string>;
  eligibleManifests: Set<string>;
  eligibleBlobs: Set<string>;
  summary: string;
}

function parse(output: string): GcOutput {
  const parsed: GcOutput = { markingLines: new Set(), marked: new Set(), eligibleManifests: new Set(), eligibleBlobs: new Set(), summary: '' };
  for (const line of output.split('\n')) {
    let m = /^\S+: marking (?:manifest|blob) (sha256:[0-9a-f]{64}) ?$/.exec(line);
    if (m) {
      parsed.markingLines.add(line.trimEnd());
      parsed.marked.add(m[1]!);
      continue;
    }
    if ((m = /^manifest eligible for deletion: (sha256:[0-9a-f]{64})$/.exec(line))) parsed.eligibleManifests.add(m[1]!);
    else if ((m = /^blob eligible for deletion: (sha256:[0-9a-f]{64})$/.exec(line))) parsed.eligibleBlobs.add(m[1]!);
    else if (/^\d+ blobs marked, \d+ blobs and \d+ manifests eligible for deletion$/.test(line)) parsed.summary = line;
  }
  return parsed;
}

/** POST then PUT with the bytes: Distribution 2.8 does not take a blob in the POST. */
async function pushBlobInTwoSteps(base: string, repository: string, content: { data: Buffer; digest: string }): Promise<void> {
  const location = await startUpload(base, repository);
  const res = await raw(base, 'PUT', withQuery(location.replace(/^https?:\/\/[^/]+/, ''), `digest=${content.digest}`), {
    headers: { 'Content-Type': 'application/octet-stream' },
    body: content.data,
  });
  assert.equal(res.status, 201, res.body.toString());
}

const sorted = (set: Set<string>) => [...set].sort();
const minus = (a: Set<string>, b: Set<string>) => new Set([...a].filter((x) => !b.has(x)));

/** Blob files under a storage tree, by digest (Distribution: `…/sha256/ab/<hex>/data`; Wharf: `blobs/sha256/ab/<hex>`). */
function storedDigests(root: string): Set<string> {
  const found = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else {
        const m = /sha256\/[0-9a-f]{2}\/([0-9a-f]{64})(?:\/data)?$/.exec(path);
        if (m) found.add(`sha256:${m[1]}`);
      }
    }
  };
  walk(root);
  return found;
}

describe('wharf garbage-collect reports what Distribution 2.8 reports on the same content', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let reference: ReferenceRegistry;
  let wharf: WharfProcess;
  let wharfConfig: string;
  let layout: TestLayout;
  let extra: Record<string, LayoutImage>;

  before(async () => {
    requireTool('skopeo');
    requireTool(DOCKER_REGISTRY_BIN);
    work = mkdtempSync(join(tmpdir(), 'wharf-gc-compare-'));
    mkdirSync(join(work, 'home'));
    writeFileSync(join(work, 'auth.json'), '{"auths":{}}');
    env = { ...process.env, HOME: join(work, 'home'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), TMPDIR: work };
    layout = writeTestLayout(join(work, 'layout'));
    const big = seededBytes(300_000, 1);
    extra = writeImagesLayout(join(work, 'extra'), [
      { ref: 'x', layers: [big, seededBytes(1000, 2)] },
      { ref: 'y', layers: [big, seededBytes(1000, 3)] },
      { ref: 'z', layers: [seededBytes(5000, 4)] },
    ]);
    wharfConfig = join(work, 'wharf.yml');
    // history.retention: 0, or Wharf keeps the manifests the moved tags left (restorable), which Distribution deletes.
    writeFileSync(wharfConfig, 'storage:\n  delete:\n    enabled: true\n  gc:\n    delay: 0s\nhistory:\n  retention: 0s\n');
    reference = await startReferenceRegistry({ mode: 'plain' });
    wharf = await startWharf({ args: [wharfConfig] });
    // The same pushes to both: tagged images, an index, tags moved away (leaving untagged
    // manifests), a manifest that stays tagged in one repository only, and blobs no manifest uses.
    for (const host of [reference.host, wharf.host]) {
      const copy = (source: string, target: string, all = false) =>
        ok('skopeo', ['copy', '-q', ...(all ? ['--all'] : []), '--dest-tls-verify=false', source, `docker://${host}/${target}`], { env });
      await copy(`oci:${layout.dir}:base`, 'cmp/base:1');
      await copy(`oci:${layout.dir}:base`, 'cmp/base:2');
      await copy(`oci:${layout.dir}:multi`, 'cmp/multi:1', true);
      await copy(`oci:${join(work, 'extra')}:x`, 'cmp/xy:latest');
      await copy(`oci:${join(work, 'extra')}:y`, 'cmp/xy:latest');
      await copy(`oci:${join(work, 'extra')}:z`, 'cmp/z:1');
      await copy(`oci:${join(work, 'extra')}:y`, 'cmp/z:1');
      for (const seed of [7, 8]) await pushBlobInTwoSteps(`http://${host}`, 'cmp/orphans', blob(seededBytes(2000, seed)));
    }
  });
  after(async () => {
    await wharf?.dispose();
    await reference?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  // Not skopeo's environment: Distribution would read REGISTRY_AUTH_FILE as a configuration key.
  const distribution = async (...flags: string[]) =>
    parse(await ok(DOCKER_REGISTRY_BIN, ['garbage-collect', join(reference.dir, 'config.yml'), ...flags], { env: { PATH: process.env.PATH ?? '/usr/bin', OTEL_TRACES_EXPORTER: 'none' } }));
  const wharfGc = async (...flags: string[]) => parse(await ok(process.execPath, [WHARF_BIN, 'garbage-collect', wharfConfig, '--data', wharf.dataDir, ...flags]));

  it('--dry-run: the same marking lines, the same eligible blobs, the same summary', async () => {
    const [theirs, ours] = [await distribution('--dry-run'), await wharfGc('--dry-run')];
    assert.ok(theirs.marked.size > 10, 'Distribution marked the pushed content');
    assert.deepEqual(sorted(ours.markingLines), sorted(theirs.markingLines));
    assert.deepEqual(sorted(ours.eligibleBlobs), sorted(theirs.eligibleBlobs));
    assert.deepEqual(sorted(ours.eligibleManifests), sorted(theirs.eligibleManifests));
    assert.equal(ours.summary, theirs.summary);
    assert.equal(theirs.eligibleBlobs.size, 2, 'the two orphans');
  });

  it('--dry-run --delete-untagged: the same, except that Wharf keeps the children of a tagged index', async () => {
    const [theirs, ours] = [await distribution('--dry-run', '--delete-untagged'), await wharfGc('-d', '-m')];
    const untaggedX = extra.x!.manifestDigest;
    const untaggedZ = extra.z!.manifestDigest;
    assert.ok(theirs.eligibleManifests.has(untaggedX) && theirs.eligibleManifests.has(untaggedZ));
    // Distribution 2.8 deletes an index's untagged children even while the index is tagged (it
    // marks their digests but not what they reference); issue 12 rules that out for Wharf.
    const children = [layout.multi.amd64, layout.multi.arm64];
    const childDigests = new Set(children.map((c) => c.manifestDigest));
    const childBlobs = new Set(children.flatMap((c) => [c.configDigest, ...c.layerDigests]));
    assert.deepEqual(sorted(ours.eligibleManifests), sorted(minus(theirs.eligibleManifests, childDigests)));
    assert.deepEqual(sorted(minus(ours.marked, theirs.marked)), sorted(childBlobs));
    assert.deepEqual(sorted(ours.eligibleBlobs), sorted(minus(theirs.eligibleBlobs, childBlobs)));
    assert.ok(ours.eligibleBlobs.has(untaggedX) && ours.eligibleBlobs.has(extra.x!.configDigest));
    assert.equal(ours.summary, `${ours.marked.size} blobs marked, ${ours.eligibleBlobs.size} blobs and ${ours.eligibleManifests.size} manifests eligible for deletion`);
  });

  it('a real run leaves the same content behind', async () => {
    const [theirs, ours] = [await distribution(), await wharfGc()];
    assert.deepEqual(sorted(ours.eligibleBlobs), sorted(theirs.eligibleBlobs));
    const distributionLeft = storedDigests(join(reference.dir, 'data'));
    // Wharf keeps manifests in its metadata, Distribution as blobs: count them together.
    const manifests = new Set([...ours.markingLines].flatMap((line) => /marking manifest (\S+)/.exec(line)?.[1] ?? []));
    const wharfLeft = new Set([...storedDigests(join(wharf.dataDir, 'blobs')), ...manifests]);
    assert.deepEqual(sorted(wharfLeft), sorted(distributionLeft));
    for (const digest of theirs.eligibleBlobs) assert.equal(wharfLeft.has(digest), false);
    const again = await wharfGc('--dry-run');
    assert.equal(again.eligibleBlobs.size, 0);
    assert.deepEqual(sorted(again.marked), sorted(ours.marked));
    const pulled = await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${wharf.host}/cmp/base:1`, `oci:${join(work, 'back')}:base`], { env });
    assert.equal(pulled.code, 0, pulled.stderr);
  });
});
