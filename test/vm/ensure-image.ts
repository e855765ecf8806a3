/** The test image, built into the cache when missing or stale (src/main/test-image.ts). */
export { ensureTestImage, type TestImage } from '../../src/main/test-image.js';
