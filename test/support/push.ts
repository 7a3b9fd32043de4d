import assert from 'node:assert/strict';
import { blob, configBlob, imageManifest, OCI_MANIFEST, type Blob } from './oci-fixtures.js';
import { raw } from './http.js';

/** Pushes a one-layer image by raw HTTP (monolithic blob uploads, then the manifest by tag). */
export async function pushImage(
  base: string,
  repository: string,
  tag: string,
  headers: Record<string, string>,
  layer: Blob = blob(`layer of ${repository}:${tag} ${Math.random()}`),
): Promise<{ manifest: Blob; layer: Blob; config: Blob }> {
  const config = configBlob({ created: `${repository}:${tag}` });
  for (const b of [layer, config]) {
    const res = await raw(base, 'POST', `/v2/${repository}/blobs/uploads/?digest=${b.digest}`, {
      headers: { ...headers, 'Content-Type': 'application/octet-stream' },
      body: b.data,
    });
    assert.equal(res.status, 201, `blob push to ${repository}: ${res.status} ${res.body}`);
  }
  const manifest = imageManifest(config, [layer]);
  const res = await raw(base, 'PUT', `/v2/${repository}/manifests/${tag}`, { headers: { ...headers, 'Content-Type': OCI_MANIFEST }, body: manifest.data });
  assert.equal(res.status, 201, `manifest push to ${repository}: ${res.status} ${res.body}`);
  return { manifest, layer, config };
}
