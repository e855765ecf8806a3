/**
 * Does the configured number of VMs fit in the runner slice? Pure, so config validation,
 * `hangar doctor` and the agent at start can all ask it. A config that does not fit would
 * let the slice's OOM killer pick a VM at random under load; refusing it up front is kinder.
 */

export interface CapsFitInput {
  slots: number;
  vmMemoryMiB: number;
  /** Host memory a VM takes beyond its guest RAM (QEMU itself, page tables, TCG buffers). */
  overheadMiB: number;
  /** The slice's MemoryMax. */
  memoryMaxBytes: number;
  /** The slice's TasksMax, and how many tasks one VM may have; checked when both are given. */
  tasksMax?: number;
  vmTasksMax?: number;
}

export interface CapsProblem {
  /** Which setting to change, as a config path relative to `agent`. */
  path: string;
  message: string;
}

const MiB = 1024 * 1024;

/** Per-VM memory limit: guest RAM plus overhead, in bytes. */
export function vmMemoryMaxBytes(vmMemoryMiB: number, overheadMiB: number): number {
  return (vmMemoryMiB + overheadMiB) * MiB;
}

export function checkCapsFit(input: CapsFitInput): CapsProblem[] {
  const problems: CapsProblem[] = [];
  const perVmMiB = input.vmMemoryMiB + input.overheadMiB;
  const needMiB = input.slots * perVmMiB;
  const haveMiB = input.memoryMaxBytes / MiB;
  if (needMiB * MiB > input.memoryMaxBytes) {
    problems.push({
      path: 'caps.memoryMaxMiB',
      message:
        `${input.slots} slots × (${input.vmMemoryMiB} MiB guest + ${input.overheadMiB} MiB overhead) = ${needMiB} MiB ` +
        `is above the slice's MemoryMax of ${Math.floor(haveMiB)} MiB: lower slots or vm.memoryMiB, or raise caps.memoryMaxMiB`,
    });
  }
  if (input.tasksMax !== undefined && input.vmTasksMax !== undefined && input.slots * input.vmTasksMax > input.tasksMax) {
    problems.push({
      path: 'caps.tasksMax',
      message: `${input.slots} slots × ${input.vmTasksMax} tasks per VM = ${input.slots * input.vmTasksMax} is above the slice's TasksMax of ${input.tasksMax}`,
    });
  }
  return problems;
}
