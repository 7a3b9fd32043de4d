import { clientScenarios } from './support/client-scenarios.js';
import { startDistributionUnderTest, startWharfUnderTest } from './support/registries-under-test.js';

/**
 * The client scenarios against the reference registry (Debian's docker-registry, CNCF
 * Distribution): the same as cli-wharf.test.ts runs against `wharf serve`, with Wharf as the
 * source when copying registry to registry.
 */
clientScenarios('Distribution', startDistributionUnderTest, {
  modes: ['plain', 'faults'],
  peer: { name: 'wharf serve', start: startWharfUnderTest },
});
