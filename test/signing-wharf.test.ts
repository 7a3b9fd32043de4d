import { signingScenarios } from './support/signing-scenarios.js';
import { startWharfUnderTest } from './support/registries-under-test.js';

/** generate-key-pair, sign and verify against `wharf serve` (the same scenarios run against Distribution in signing-distribution.test.ts). */
signingScenarios('wharf serve', startWharfUnderTest, true);
