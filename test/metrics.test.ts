import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { raw } from './support/http.js';
import { randomBlob } from './support/oci-fixtures.js';
import { line, scrape, samples, total } from './support/prometheus.js';
import { pushImage } from './support/push.js';
import { waitFor } from './support/tools.js';
import { startReceiver } from './support/webhook-receiver.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

describe('Prometheus metrics on the debug address, merged over two worker processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-metrics-'));
  const auth = { Authorization: basic('alice', 'secret-one') };
  let wharf: WharfProcess;
  let metricsUrl: string;
  let families: Awaited<ReturnType<typeof scrape>>;
  const orphan = randomBlob(300_000);
  let pushed: Awaited<ReturnType<typeof pushImage>>;

  before(async () => {
    writeHtpasswd(join(dir, 'htpasswd'), { alice: 'secret-one' });
    writeFileSync(
      join(dir, 'config.yml'),
      [
        'http:',
        '  debug:',
        '    addr: 127.0.0.1:0',
        '    prometheus: {enabled: true, path: /metrics}',
        'auth:',
        `  htpasswd: {realm: test, path: ${join(dir, 'htpasswd')}}`,
        'storage:',
        // Collections every second with no delay: the orphan blob is marked, then swept.
        '  gc: {enabled: true, interval: 1s, delay: 0s}',
        'server: {workers: 2}',
      ].join('\n'),
    );
    wharf = await startWharf({ args: [join(dir, 'config.yml')], dataDir: join(dir, 'data') });
    const debug = /"debug":"([^"]+)"/.exec(wharf.output());
    assert.ok(debug, 'the startup line names the debug address');
    metricsUrl = `http://${debug[1]}/metrics`;

    // The scripted push and pull, over eight connections at once: the workers take them in turn,
    // so the totals below hold only if the scrape merged both workers' counts.
    pushed = await pushImage(wharf.url, 'team/app', 'v1', auth, randomBlob(1_000_000));
    const orphanPush = await raw(wharf.url, 'POST', `/v2/team/scratch/blobs/uploads/?digest=${orphan.digest}`, {
      headers: { ...auth, 'Content-Type': 'application/octet-stream' },
      body: orphan.data,
    });
    assert.equal(orphanPush.status, 201);
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const manifest = await fetch(`${wharf.url}/v2/team/app/manifests/v1`, { headers: { ...auth, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
        assert.equal(manifest.status, 200);
        await manifest.arrayBuffer();
        const layer = await fetch(`${wharf.url}/v2/team/app/blobs/${pushed.layer.digest}`, { headers: auth });
        assert.equal(layer.status, 200);
        assert.equal((await layer.arrayBuffer()).byteLength, 1_000_000);
      }),
    );
    const refused = await raw(wharf.url, 'GET', '/v2/team/app/tags/list', { headers: { Authorization: basic('alice', 'wrong') } });
    assert.equal(refused.status, 401);
    // Wait for a collection to free the orphan, then take the scrape the tests read.
    await waitFor(async () => total(await scrape(metricsUrl), 'wharf_gc_freed_bytes_total') >= orphan.data.length, 'a collection freed the orphan blob', 30_000);
    families = await scrape(metricsUrl);
  });
  after(async () => {
    await wharf?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts requests by route family, method and status, with duration histograms', () => {
    assert.equal(total(families, 'wharf_http_requests_total', { family: 'manifest', method: 'GET', status: '200' }), 8);
    assert.equal(total(families, 'wharf_http_requests_total', { family: 'blob', method: 'GET', status: '200' }), 8);
    assert.equal(total(families, 'wharf_http_requests_total', { family: 'manifest', method: 'PUT', status: '201' }), 1);
    assert.equal(total(families, 'wharf_http_requests_total', { family: 'upload', method: 'POST', status: '201' }), 3);
    assert.equal(total(families, 'wharf_http_requests_total', { family: 'tags', method: 'GET', status: '401' }), 1);
    assert.equal(families.get('wharf_http_request_duration_seconds')!.type, 'HISTOGRAM');
    const series = 'family="blob",method="GET",status="200"';
    assert.equal(line(families.text, 'wharf_http_request_duration_seconds_count', series), 8);
    assert.equal(line(families.text, 'wharf_http_request_duration_seconds_bucket', `le="+Inf",${series}`), 8);
    const sum = line(families.text, 'wharf_http_request_duration_seconds_sum', series)!;
    assert.ok(sum > 0 && sum < 60, `sum of durations ${sum}`);
  });


  it('counts bytes received and sent by family', () => {
    const received = total(families, 'wharf_http_received_bytes_total', { family: 'upload' });
    assert.ok(received >= 1_000_000 + orphan.data.length && received < 1_000_000 + orphan.data.length + 100_000, `received ${received}`);
    const sent = total(families, 'wharf_http_sent_bytes_total', { family: 'blob' });
    assert.ok(sent >= 8 * 1_000_000 && sent < 8 * 1_000_000 + 100_000, `sent ${sent}`);
  });

  it('reports uploads in progress, blobs, manifests and stored bytes', () => {
    assert.equal(total(families, 'wharf_uploads_in_progress'), 0);
    // team/scratch held the orphan only: the collection removed it with the blob.
    assert.equal(total(families, 'wharf_repositories'), 1);
    assert.equal(total(families, 'wharf_manifests'), 1);
    // The layer and the config; the orphan was collected.
    assert.equal(total(families, 'wharf_blobs'), 2);
    assert.equal(total(families, 'wharf_blob_bytes'), pushed.layer.data.length + pushed.config.data.length);
    assert.equal(total(families, 'wharf_storage_read_only'), 0);
  });

  it('times SQLite commits', () => {
    const [commits] = samples(families, 'wharf_sqlite_commit_duration_seconds');
    // At least: three blob commits, one manifest, one repository link each.
    assert.ok(Number(commits!.count) >= 4, `${commits!.count} commits`);
    assert.ok(Number(commits!.sum) > 0 && Number(commits!.sum) < 10);
  });

  it('counts failed sign-ins', () => {
    assert.equal(total(families, 'wharf_auth_failures_total', { kind: 'login', reason: 'bad credentials' }), 1);
  });

  it('counts collections and the bytes they freed', () => {
    // With no delay one run marks and deletes; more may have run since.
    const runs = total(families, 'wharf_gc_runs_total', { outcome: 'finished' });
    assert.ok(runs >= 1, `${runs} collections`);
    assert.equal(total(families, 'wharf_gc_freed_bytes_total'), orphan.data.length);
  });
});

describe('notification metrics: events per endpoint and outcome, each endpoint\'s queue', () => {
  it('counts delivered, failed and parked events and shows pending and parked entries, over two workers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-metrics-notify-'));
    const receiver = await startReceiver();
    const down = await startReceiver();
    down.answer(503);
    try {
      writeFileSync(
        join(dir, 'config.yml'),
        [
          'http:',
          '  debug:',
          '    addr: 127.0.0.1:0',
          '    prometheus: {enabled: true}',
          'notifications:',
          '  endpoints:',
          `    - {name: hook, url: "${receiver.url}", timeout: 2s, ignore: {actions: [pull]}}`,
          `    - {name: down, url: "${down.url}", timeout: 2s, threshold: 1, backoff: 100ms, maxattempts: 2, ignore: {actions: [pull]}}`,
          'server: {workers: 2}',
        ].join('\n'),
      );
      const wharf = await startWharf({ args: [join(dir, 'config.yml')], dataDir: join(dir, 'data') });
      try {
        const metricsUrl = `http://${/"debug":"([^"]+)"/.exec(wharf.output())![1]}/metrics`;
        await pushImage(wharf.url, 'notify/app', 'v1', {});
        // Two blob pushes and a manifest push: three events for each endpoint.
        await receiver.waitFor((r) => r.events().length >= 3, 20_000);
        await waitFor(async () => total(await scrape(metricsUrl), 'wharf_notification_parked', { endpoint: 'down' }) >= 1, 'the down endpoint parked an entry', 20_000);
        const families = await scrape(metricsUrl);
        assert.equal(total(families, 'wharf_notification_events_total', { endpoint: 'hook', outcome: 'delivered' }), receiver.events().length);
        assert.equal(total(families, 'wharf_notification_events_total', { endpoint: 'hook', outcome: 'failed' }), 0);
        assert.ok(total(families, 'wharf_notification_events_total', { endpoint: 'down', outcome: 'failed' }) >= 2, 'the down endpoint failed');
        assert.ok(total(families, 'wharf_notification_events_total', { endpoint: 'down', outcome: 'parked' }) >= 1);
        assert.equal(total(families, 'wharf_notification_events_total', { endpoint: 'down', outcome: 'delivered' }), 0);
        assert.equal(total(families, 'wharf_notification_parked', { endpoint: 'hook' }), 0);
        // Everything was sent to hook: nothing pending; down has a series of its own.
        assert.equal(total(families, 'wharf_notification_pending', { endpoint: 'hook' }), 0);
        assert.equal(samples(families, 'wharf_notification_pending', { endpoint: 'down' }).length, 1);
      } finally {
        await wharf.stop();
      }
    } finally {
      await receiver.close();
      await down.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
