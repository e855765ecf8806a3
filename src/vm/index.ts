/** What the rest of Hangar uses from src/vm/: the interface, the QEMU driver, the image build. */
export type { VmDriver, VmExit, VmHandle, VmId, VmSpec } from './driver.js';
export { DriverError, type DriverErrorCode } from './errors.js';
export { createQemuMicrovmDriver, type QemuMicrovmOptions } from './qemu-microvm/driver.js';
export {
  chooseAccelerator, hostTscKhz, probeAccelerator, qemuHasSandbox, qemuVersion, type ProbeOptions, type ProbeResult,
} from './qemu-microvm/accel.js';
export { buildTestImage, GUEST_MODULES, type ImageManifest, type TestImageOptions } from './image/build.js';
export { defaultCacheDir } from './image/debs.js';
