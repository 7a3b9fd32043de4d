import { signingScenarios } from './support/signing-scenarios.js';
import { startDistributionUnderTest } from './support/registries-under-test.js';

/** generate-key-pair, sign and verify against Distribution (registry:2 as Debian packages it), which has no referrers API. */
signingScenarios('Distribution', startDistributionUnderTest, false);
