/** The whole installation on this machine, as the demo runs it (src/main/local-fleet.ts). */
export { startLocalFleet as startFleet, type Fleet } from '../../src/main/local-fleet.js';
