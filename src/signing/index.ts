export * from './signing-keys.js';
export * from './simple-signing-payload.js';
export * from './signature-manifest.js';
export * from './signers.js';
export * from './signature-verification.js';
