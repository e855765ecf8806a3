import { startLocalFleet, type Fleet, type FleetOptions } from '../../src/main/local-fleet.js';
import { kvmProbe } from './kvm.js';

export type { Fleet };

/**
 * The whole installation on this machine, as the demo runs it (src/main/local-fleet.ts), its
 * VMs on KVM when the run's one probe (test/helpers/accel-probe.ts) found that KVM boots here.
 */
export function startFleet(o: FleetOptions = {}): Promise<Fleet> {
  return startLocalFleet({ accel: kvmProbe().ok ? 'kvm' : 'tcg', ...o });
}
