import type { Caps } from '../caps/create-caps.js';
import type { HostNetwork } from '../net/host-network.js';
import type { VmDriver } from '../vm/driver.js';
import type { GuestNetwork } from './guest-network.js';

/** What a host lends its agent: the VM driver, the caps and the network. */
export interface HostParts {
  driver: VmDriver;
  caps: Caps;
  net: HostNetwork;
  /** Guest isolation (nft table, DNS forwarder, egress log); absent only with `agent.network.isolation: false`. */
  guestNet?: GuestNetwork;
}

/** The image a VM boots: the test image (kernel + initramfs) or the runner image (kernel + root disk). */
export interface GuestImage {
  kernel: string;
  initrd?: string;
  rootDisk?: string;
}
