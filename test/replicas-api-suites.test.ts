import { after } from 'node:test';
import { answerStartWharfWith, startReplicaDeployment } from './support/replica-deployment.js';

// The manifest and the blob/upload API suites (test/api-manifests.test.ts, test/api-blobs-uploads.test.ts),
// as they are, through HAProxy in front of three `wharf serve` replicas on S3 (Ceph RADOS Gateway)
// and PostgreSQL: every `startWharf` in them answers with the load balancer, so each request of
// a push may land on another replica.
const deployment = await startReplicaDeployment({ replicas: 3 });
answerStartWharfWith(deployment);
await import('./api-manifests.test.js');
await import('./api-blobs-uploads.test.js');
// Registered after the suites' own hooks, so it runs once they are done.
after(() => deployment.stop());
