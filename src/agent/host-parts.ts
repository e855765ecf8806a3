import type { Caps } from '../caps/create-caps.js';
import type { HostNetwork } from '../net/host-network.js';
import type { VmDriver } from '../vm/driver.js';

/** What a host lends its agent: the VM driver, the caps and the network. */
export interface HostParts {
  driver: VmDriver;
  caps: Caps;
  net: HostNetwork;
}

/** The image a VM boots: the test image (kernel + initramfs) or the runner image (kernel + root disk). */
export interface GuestImage {
  kernel: string;
  initrd?: string;
  rootDisk?: string;
}
