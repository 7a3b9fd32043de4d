import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/config.js';
import { HAPROXY_CONFIG, haproxyBinary, renderHaproxyConfig } from './support/replica-deployment.js';
import { ok } from './support/tools.js';

// The files under deploy/ that docs/deployment.md shows: they parse, Wharf accepts their config,
// and the HAProxy configuration is the one the replica tests run.
const DEPLOY = fileURLToPath(new URL('../deploy/', import.meta.url));
const secrets = { REGISTRY_DATABASE_PASSWORD: 'pw', REGISTRY_STORAGE_S3_ACCESSKEY: 'ak', REGISTRY_STORAGE_S3_SECRETKEY: 'sk' };

function accepted(text: string): ReturnType<typeof loadConfig> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-deploy-'));
  try {
    writeFileSync(join(dir, 'config.yml'), text);
    return loadConfig({ file: join(dir, 'config.yml'), env: secrets });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('deploy/', () => {
  it('kubernetes: every manifest parses; the Deployment probes /readyz and /healthz and takes its secrets from a Secret', () => {
    const kinds = new Map<string, Record<string, any>>();
    for (const file of readdirSync(join(DEPLOY, 'kubernetes')).filter((f) => f.endsWith('.yaml'))) {
      for (const doc of parseAllDocuments(readFileSync(join(DEPLOY, 'kubernetes', file), 'utf8'))) {
        assert.deepEqual(doc.errors, [], file);
        const object = doc.toJS() as Record<string, any>;
        kinds.set(object.kind, object);
      }
    }
    assert.deepEqual([...kinds.keys()].sort(), ['ConfigMap', 'Deployment', 'Service']);
    const container = kinds.get('Deployment')!.spec.template.spec.containers[0];
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    const fromSecrets = container.env.filter((e: any) => e.valueFrom?.secretKeyRef?.name === 'wharf-secrets').map((e: any) => e.name).sort();
    assert.deepEqual(fromSecrets, Object.keys(secrets).sort());
    assert.equal(kinds.get('Service')!.spec.sessionAffinity, 'None');
  });

  it("kubernetes and systemd: Wharf's config loader accepts the config.yml (S3 + PostgreSQL) with the secrets from the environment", () => {
    const configMap = parseAllDocuments(readFileSync(join(DEPLOY, 'kubernetes', 'configmap.yaml'), 'utf8'))[0]!.toJS() as { data: Record<string, string> };
    for (const text of [configMap.data['config.yml']!, readFileSync(join(DEPLOY, 'systemd', 'config.yml'), 'utf8')]) {
      const { config, warnings } = accepted(text);
      assert.deepEqual(warnings, []);
      assert.equal(config.metadata.kind, 'postgres');
      assert.equal(config.metadata.postgres?.password, 'pw');
      assert.equal(config.storage.s3?.bucket, 'registry');
      assert.equal(config.storage.s3?.secretKey, 'sk');
    }
  });

  it('haproxy: the file is valid for Debian\'s HAProxy, and the replica tests run it with only addresses changed', async () => {
    const template = readFileSync(HAPROXY_CONFIG, 'utf8');
    const rendered = renderHaproxyConfig(template, '127.0.0.1:15000', ['127.0.0.1:15001', '127.0.0.1:15002', '127.0.0.1:15003']);
    const differing = (a: string, b: string) => a.split('\n').filter((line, i) => line !== b.split('\n')[i]);
    assert.deepEqual(differing(rendered, template).map((l) => l.trim()), [
      'bind 127.0.0.1:15000',
      'server wharf1 127.0.0.1:15001 check',
      'server wharf2 127.0.0.1:15002 check',
      'server wharf3 127.0.0.1:15003 check',
    ]);
    await ok(haproxyBinary(), ['-c', '-f', HAPROXY_CONFIG]);
  });
});
