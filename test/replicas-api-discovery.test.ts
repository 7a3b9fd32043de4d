import { after } from 'node:test';
import { answerStartWharfWith, startReplicaDeployment } from './support/replica-deployment.js';

// The discovery API suite (test/api-discovery.test.ts: version check, tag lists, catalog,
// referrers), as it is, through HAProxy in front of three replicas on S3 and PostgreSQL. A
// deployment of its own: its catalog pages expect exactly the repositories it pushed.
const deployment = await startReplicaDeployment({ replicas: 3 });
answerStartWharfWith(deployment);
await import('./api-discovery.test.js');
after(() => deployment.stop());
