import { createHash } from 'node:crypto';

/**
 * This Hangar's installation id: the label `hangar-id-<id>` on every runner it mints, so the
 * reconciler deletes only runners it made (never another installation's in the same organization).
 * Set `control.installationId` to pin it; by default it is derived from the App id and the Redis
 * prefix, which two installations sharing an organization do not both have.
 */
export function installationIdOf(config: { control: { installationId?: string | undefined }; github: { appId: number }; redis: { prefix: string } }): string {
  if (config.control.installationId) return config.control.installationId;
  return createHash('sha256').update(`${config.github.appId}:${config.redis.prefix}`).digest('hex').slice(0, 10);
}
