import * as CDX from '@cyclonedx/cyclonedx-library';
import type { ImageInventory } from './inventory.js';

/** The artifact type of an SBOM referrer (and the media type of its one layer). */
export const CYCLONEDX_MEDIA_TYPE = 'application/vnd.cyclonedx+json';

/**
 * An inventory as a CycloneDX 1.5 JSON document: the image is the metadata component, each
 * package a library (or the OS an operating-system component), with its purl. `name` is how the
 * image is known (repository and tag or digest).
 */
export function inventoryToCycloneDx(inventory: ImageInventory, options: { name: string; timestamp?: Date }): string {
  const bom = new CDX.Models.Bom();
  bom.serialNumber = `urn:uuid:${crypto.randomUUID()}`;
  bom.metadata.timestamp = options.timestamp ?? new Date();
  bom.metadata.tools.components.add(new CDX.Models.Component(CDX.Enums.ComponentType.Application, 'wharf', { group: 'wharf-registry' }));
  const image = new CDX.Models.Component(CDX.Enums.ComponentType.Container, options.name, {
    bomRef: inventory.digest,
    version: inventory.digest,
  });
  if (inventory.platform) {
    const platform = [inventory.platform.os, inventory.platform.architecture, inventory.platform.variant].filter(Boolean).join('/');
    image.properties.add(new CDX.Models.Property('wharf:image:platform', platform));
  }
  bom.metadata.component = image;
  if (inventory.os) {
    const os = new CDX.Models.Component(CDX.Enums.ComponentType.OperatingSystem, inventory.os.id, { bomRef: `os:${inventory.os.id}` });
    if (inventory.os.versionId) os.version = inventory.os.versionId;
    if (inventory.os.prettyName) os.description = inventory.os.prettyName;
    bom.components.add(os);
  }
  for (const pkg of inventory.packages) {
    const component = new CDX.Models.Component(CDX.Enums.ComponentType.Library, pkg.name, {
      bomRef: pkg.purl,
      version: pkg.version,
      purl: pkg.purl,
    });
    if (pkg.namespace) component.group = pkg.namespace;
    component.properties.add(new CDX.Models.Property('wharf:package:type', pkg.type));
    component.properties.add(new CDX.Models.Property('wharf:package:location', pkg.location));
    if (pkg.source) {
      component.properties.add(new CDX.Models.Property('wharf:package:source-name', pkg.source.name));
      component.properties.add(new CDX.Models.Property('wharf:package:source-version', pkg.source.version));
    }
    bom.components.add(component);
  }
  const serializer = new CDX.Serialize.JsonSerializer(new CDX.Serialize.JSON.Normalize.Factory(CDX.Spec.Spec1dot5));
  return serializer.serialize(bom, { sortLists: false, space: 0 });
}
