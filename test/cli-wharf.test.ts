import { clientScenarios } from './support/client-scenarios.js';
import { startDistributionUnderTest, startWharfUnderTest } from './support/registries-under-test.js';

/**
 * The client scenarios against `wharf serve`: the CLI end to end over plain HTTP, and through a
 * fault-injecting proxy. The same scenarios run against Distribution in cli-distribution.test.ts;
 * copying registry to registry takes Distribution as the source here.
 */
clientScenarios('wharf serve', startWharfUnderTest, {
  modes: ['plain', 'faults'],
  peer: { name: 'Distribution', start: startDistributionUnderTest },
});
