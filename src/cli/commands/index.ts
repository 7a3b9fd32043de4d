import type { Command } from 'commander';
import { registerCopy } from './copy.js';
import { registerGenerateKeyPair } from './generate-key-pair.js';
import { registerHistory } from './history.js';
import { registerImages } from './images.js';
import { registerInspect } from './inspect.js';
import { registerLogin } from './login.js';
import { registerManifest } from './manifest.js';
import { registerPin } from './pin.js';
import { registerPull } from './pull.js';
import { registerPush } from './push.js';
import { registerRegistryCommands } from './registry.js';
import { registerSearch } from './search.js';
import { registerRepositoryCommands } from './repository.js';
import { registerSign } from './sign.js';
import { registerTag } from './tag.js';
import { registerVerify } from './verify.js';
import { registerVersion } from './version.js';

/** Every client command, in the order `wharf --help` lists them. */
export function registerClientCommands(program: Command): void {
  registerLogin(program);
  registerSearch(program);
  registerRepositoryCommands(program);
  registerPull(program);
  registerPush(program);
  registerTag(program);
  registerCopy(program);
  registerHistory(program);
  registerInspect(program);
  registerManifest(program);
  registerImages(program);
  registerRegistryCommands(program);
  registerPin(program);
  registerGenerateKeyPair(program);
  registerSign(program);
  registerVerify(program);
  registerVersion(program);
  registerImageGroup(program);
}

/**
 * `wharf image ls|pull|push|rm|tag|inspect|history`: the same commands under docker's
 * management-command names, so `docker image …` lines translate word for word.
 */
function registerImageGroup(program: Command): void {
  const image = program.command('image').description('manage images (docker image …): ls, pull, push, rm, tag, inspect, history');
  registerImages(image);
  registerPull(image);
  registerPush(image);
  registerTag(image);
  registerInspect(image);
  registerHistory(image);
  for (const sub of image.commands) {
    if (sub.name() === 'images') sub.alias('list');
    if (sub.name() === 'rmi') sub.aliases(['rm', 'remove']);
  }
}
