import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { raw } from './support/http.js';
import { OCI_MANIFEST, configBlob, imageManifest, randomBlob, sha256 } from './support/oci-fixtures.js';
import { pushBlob, putManifest } from './support/push.js';
import { WHARF_BIN, startWharf, type WharfProcess } from './support/wharf-process.js';

const run = promisify(execFile);

async function fsck(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [WHARF_BIN, 'fsck', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function blobFile(dataDir: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

describe('wharf fsck finds and quarantines blobs whose bytes do not match their digest, while serving', () => {
  let wharf: WharfProcess;
  const good = randomBlob(200_000);
  const damaged = randomBlob(150_000);
  const lost = randomBlob(1000);
  const config = configBlob({ fsck: true });
  before(async () => {
    wharf = await startWharf();
    for (const blob of [good, damaged, lost, config]) await pushBlob(wharf.url, 'fsck/app', blob);
    assert.equal((await putManifest(wharf.url, 'fsck/app', 'v1', imageManifest(config, [good, damaged]), OCI_MANIFEST)).status, 201);
    // Storage damaged behind the registry's back: flipped bytes in one blob, another deleted.
    const file = blobFile(wharf.dataDir, damaged.digest);
    const bytes = readFileSync(file);
    bytes[1000] = bytes[1000]! ^ 0xff;
    writeFileSync(file, bytes);
    writeFileSync(blobFile(wharf.dataDir, lost.digest), '');
  });
  after(() => wharf.dispose());

  it('--dry-run reports and changes nothing', async () => {
    const result = await fsck(['--data', wharf.dataDir, '--dry-run']);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, new RegExp(`blob ${damaged.digest}: corrupt, its 150000 bytes hash to sha256:`));
    assert.match(result.stdout, new RegExp(`blob ${lost.digest}: corrupt, its 0 bytes hash to ${sha256('')}`));
    assert.match(result.stdout, new RegExp(`4 blobs checked \\(${350_000 + config.data.length} bytes\\): 2 corrupt, 0 missing, 0 files without a record \\(dry run`));
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/fsck/app/blobs/${damaged.digest}`)).status, 200);
  });

  it('quarantines the bad blobs; they are no longer served and the next push stores good bytes again', async () => {
    const result = await fsck(['--data', wharf.dataDir, '--json']);
    assert.equal(result.code, 1, result.stderr);
    const report = JSON.parse(result.stdout) as { checked: number; corrupt: Array<{ digest: string; quarantinedTo: string }>; missing: string[] };
    assert.equal(report.checked, 4);
    assert.deepEqual(report.corrupt.map((c) => c.digest).sort(), [damaged.digest, lost.digest].sort());
    for (const finding of report.corrupt) assert.ok(existsSync(join(wharf.dataDir, finding.quarantinedTo)), 'the bad bytes are kept aside');
    assert.equal(existsSync(blobFile(wharf.dataDir, damaged.digest)), false);

    assert.equal((await raw(wharf.url, 'HEAD', `/v2/fsck/app/blobs/${damaged.digest}`)).status, 404, 'so a client pushes it again');
    assert.equal((await raw(wharf.url, 'GET', `/v2/fsck/app/blobs/${good.digest}`)).body.equals(good.data), true);
    await pushBlob(wharf.url, 'fsck/app', damaged);
    const pulled = await raw(wharf.url, 'GET', `/v2/fsck/app/blobs/${damaged.digest}`);
    assert.equal(pulled.status, 200);
    assert.ok(pulled.body.equals(damaged.data));
    // A mount into another repository works again too.
    const mounted = await raw(wharf.url, 'POST', `/v2/fsck/other/blobs/uploads/?mount=${damaged.digest}&from=fsck/app`);
    assert.equal(mounted.status, 201);

    const again = await fsck(['--data', wharf.dataDir]);
    assert.equal(again.code, 0, again.stdout);
    assert.match(again.stdout, /^3 blobs checked .*: 0 corrupt, 0 missing/m);
  });

  it('reports a blob whose file is gone as missing', async () => {
    const { unlinkSync } = await import('node:fs');
    unlinkSync(blobFile(wharf.dataDir, config.digest));
    const result = await fsck(['--data', wharf.dataDir]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, new RegExp(`blob ${config.digest}: missing from storage; marked quarantined`));
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/fsck/app/blobs/${config.digest}`)).status, 404);
  });
});
